"""What tests check of servers: the TCP ports a process tree listens on (Linux ``/proc``), and HTTP readiness.

Example:
    >>> exposed = [s for s in listening_sockets(os.getpid()) if not s.loopback]
    >>> exposed
    []
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"  # TCP state code in /proc/net/tcp*


@dataclasses.dataclass(frozen=True)
class Listener:
    """One listening TCP socket: its process and local address."""

    pid: int
    process: str
    ip: str
    port: int

    @property
    def loopback(self) -> bool:
        """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (``::ffff:127.0.0.1``)."""
        address = ipaddress.ip_address(self.ip)
        mapped = getattr(address, "ipv4_mapped", None)
        return (mapped or address).is_loopback


def _listening_inodes() -> dict[int, tuple[str, int]]:
    found: dict[int, tuple[str, int]] = {}
    for family, name in ((socket.AF_INET, "tcp"), (socket.AF_INET6, "tcp6")):
        table = PROC / "net" / name
        if not table.exists():
            continue
        for line in table.read_text(encoding="ascii").splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            hex_ip, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_ip)
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # host-order words
            found[int(fields[9])] = (socket.inet_ntop(family, raw), int(hex_port, 16))
    return found


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def listening_sockets(pid: int) -> list[Listener]:
    """Listening TCP sockets held by ``pid`` or its descendants (processes you cannot inspect are skipped)."""
    inodes = _listening_inodes()
    found = []
    for proc in descendants(pid):
        try:
            fds = list((PROC / str(proc) / "fd").iterdir())
            name = (PROC / str(proc) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                ip, port = inodes[int(target[8:-1])]
                found.append(Listener(proc, name.strip()[:120], ip, port))
    return found


def wait_http(url: str, timeout_s: float = 60.0, interval_s: float = 0.25) -> bool:
    """Poll ``url`` until it answers 200 or ``timeout_s`` passes; True when it answered."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(interval_s)
    return False
