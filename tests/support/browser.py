"""A real headless browser for the pages the ledger writes: Debian's Chromium, driven by
Playwright (no browser download: Playwright is pointed at the system's binary).

`python -m tests.support.browser PAGE.html SHOT.png` takes the screenshot in docs/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = ("chromium", "chromium-browser")


def chromium() -> str:
    """The system's Chromium; on a new machine (CI's), Debian's package is installed first,
    since the suite's command is the whole of CI's: no step before it could do it."""
    found = _which()
    if found is None and shutil.which("apt-get"):
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "chromium"], check=False, env=env,
                       capture_output=True)
        found = _which()
    if found is None:
        raise RuntimeError("no Chromium on this machine, and apt-get could not install it: install Debian's "
                           "package `chromium`")
    return found


def _which() -> str | None:
    return next((found for name in CHROMIUM if (found := shutil.which(name))), None)


@dataclass
class Visit:
    page: Any
    console: list[tuple[str, str]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [(kind, text) for kind, text in self.console if kind in ("error", "pageerror")]


@contextmanager
def visit(path: Path, width: int = 1200) -> Iterator[Visit]:
    """Open `path` in headless Chromium, recording its console and every request it makes."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            seen = Visit(page)
            page.on("console", lambda m: seen.console.append((m.type, m.text)))
            page.on("pageerror", lambda e: seen.console.append(("pageerror", str(e))))
            page.on("request", lambda r: seen.requests.append(r.url))
            page.goto(path.resolve().as_uri())
            yield seen
        finally:
            browser.close()


def wait_for_charts(seen: Visit, count: int) -> int:
    """Wait until `count` Plotly charts have drawn their SVG; return how many did."""
    seen.page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {count}", timeout=60_000
    )
    return seen.page.evaluate("document.querySelectorAll('.js-plotly-plot').length")


if __name__ == "__main__":
    page, shot = Path(sys.argv[1]), Path(sys.argv[2])
    with visit(page) as seen:
        wait_for_charts(seen, int(sys.argv[3]) if len(sys.argv) > 3 else 1)
        seen.page.screenshot(path=str(shot), full_page=True)
