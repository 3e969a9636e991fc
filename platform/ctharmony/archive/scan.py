"""List the files of an archive, setting aside paths that are not safe to read.

Only regular files inside the archive are read. A symbolic link is never followed: one that points
outside the archive, one that is broken, and one that points inside (its target is listed under its
own path, so following it would count a file twice) all become quarantine rows, as do FIFOs,
sockets and devices (reading them could block or never end). Listing uses ``os.scandir`` (no
``stat`` per regular file on Linux), so it costs little next to reading headers.

Example::

    listing = list_archive(Path("archive"))
    len(listing.files), listing.unsafe[:1]
    # -> (5000, [('/archive/evil', 'unsafe path: symbolic link pointing outside the archive')])
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ctharmony.archive import quarantine as q


@dataclasses.dataclass
class Listing:
    """What an archive holds: readable files (absolute, sorted) and unsafe paths with their reason."""

    root: Path
    files: list[str]
    unsafe: list[tuple[str, str]]

    def site_of(self, path: str) -> str:
        """The first folder under the root (the site in ``<site>/<patient>/...`` layouts), else ''."""
        rel = os.path.relpath(path, self.root)
        head = rel.split(os.sep, 1)
        return head[0] if len(head) > 1 else ""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _symlink_reason(path: str, root: str) -> str:
    target = os.path.realpath(path)
    if not os.path.exists(target):
        return q.reason(q.UNSAFE_PATH, "broken symbolic link")
    if not _inside(target, root):
        return q.reason(q.UNSAFE_PATH, "symbolic link pointing outside the archive")
    return q.reason(q.UNSAFE_PATH, "symbolic link inside the archive (not followed; its target is listed itself)")


def list_archive(root: Path | str) -> Listing:
    """Walk ``root`` recursively without following links.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise FileNotFoundError(f"archive {root_path} is not a folder")
    real_root = os.path.realpath(root_path)
    files: list[str] = []
    unsafe: list[tuple[str, str]] = []
    stack = [real_root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as err:
            unsafe.append((folder, q.reason(q.UNREADABLE, f"folder cannot be listed ({err.strerror})")))
            continue
        for entry in entries:
            if not _utf8(entry.path):
                shown = os.fsencode(entry.path).decode("utf-8", "backslashreplace")
                unsafe.append((shown, q.reason(q.UNSAFE_PATH, "name is not valid UTF-8 (not read)")))
                continue
            try:
                if entry.is_symlink():
                    unsafe.append((entry.path, _symlink_reason(entry.path, real_root)))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    files.append(entry.path)
                else:
                    unsafe.append((entry.path, q.reason(q.UNSAFE_PATH, "not a regular file (FIFO, socket or device)")))
            except OSError as err:
                unsafe.append((entry.path, q.reason(q.UNREADABLE, err.strerror or "cannot stat")))
    files.sort()
    unsafe.sort()
    return Listing(Path(real_root), files, unsafe)


def chunks(items: list[str], size: int) -> list[list[str]]:
    """Split ``items`` into consecutive chunks of at most ``size``."""
    size = max(1, int(size))
    return [items[i : i + size] for i in range(0, len(items), size)]
