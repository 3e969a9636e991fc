"""A report page as headless Chromium (Debian's ``chromium``) shows it: what loaded, and a screenshot.

:func:`inspect_page` opens a copy of the page with a small script appended that, once every image has
loaded, writes what the browser laid out (tables, their rows and sizes, each image's decoded size) into
the DOM, which ``--dump-dom`` prints. ``make test`` installs Chromium when it is missing.

Run as a script to refresh the README's screenshot (from the radiomics tables on)::

    python tests/testkit/browser.py demo-out/report/report.html docs/report.png
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """<script>
window.addEventListener("load", () => {
  const box = (e) => { const r = e.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
  const found = {
    title: document.title,
    tables: [...document.querySelectorAll("table")].map((t) => ({
      caption: t.previousElementSibling ? t.previousElementSibling.textContent : "",
      rows: t.rows.length, size: box(t)})),
    images: [...document.images].map((i) => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
                                               height: i.naturalHeight, shown: box(i)})),
    pageWidth: document.documentElement.scrollWidth,
  };
  const out = document.createElement("pre");
  out.id = "ctharmony-probe";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    """The Chromium executable; an AssertionError that says how to install it when there is none."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is missing: `make test` installs it (apt-get install chromium)"
    return found


def _run(*args: str, timeout: float = 120.0) -> str:
    with tempfile.TemporaryDirectory() as profile:
        command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--hide-scrollbars", f"--user-data-dir={profile}", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


def inspect_page(page: Path) -> dict:
    """Tables (caption, rows, laid-out size) and images (decoded size) of ``page`` once Chromium loaded it."""
    text = Path(page).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as folder:
        probed = Path(folder) / "page.html"
        probed.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
        dom = _run("--virtual-time-budget=10000", "--window-size=1280,1000", "--dump-dom", probed.as_uri())
    match = re.search(r'<pre id="ctharmony-probe">(.*?)</pre>', dom, re.S)
    assert match, "the page never finished loading (no probe in the DOM)"
    return json.loads(html.unescape(match.group(1)))


def screenshot(page: Path, png: Path, width: int = 1100, height: int = 1500, colours: int = 64,
               heading: str | None = None) -> Path:
    """A ``width`` x ``height`` screenshot of ``page``: its top, or its title then the part from the first
    heading that contains ``heading`` on; reduced to ``colours`` colours (a small PNG)."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as folder:
        raw, shown = Path(folder) / "shot.png", Path(folder) / "page.html"
        text = Path(page).read_text(encoding="utf-8")
        if heading is not None:  # runs before the first paint: drop what comes between the title and the heading
            skip = ("<script>{const all = [...document.body.children];"
                    f"const at = all.findIndex((e) => /^H[23]$/.test(e.tagName) && e.textContent.includes("
                    f"{json.dumps(heading)}));"
                    "all.slice(1, Math.max(at, 1)).forEach((e) => e.remove());}</script>")
            text = text.replace("</body>", skip + "</body>")
        shown.write_text(text, encoding="utf-8")
        _run("--virtual-time-budget=10000", f"--window-size={width},{height}", f"--screenshot={raw}",
             shown.as_uri())
        image = Image.open(raw).convert("RGB").quantize(colors=colours)
        png.parent.mkdir(parents=True, exist_ok=True)
        image.save(png, optimize=True)
    return png


if __name__ == "__main__":
    print(screenshot(Path(sys.argv[1]), Path(sys.argv[2]), heading="Radiomics reproducibility"))
