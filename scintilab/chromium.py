"""Headless Chromium (Debian's ``chromium`` package): load a page, take its DOM and a screenshot.

Used to check that shared HTML renders offline, to take the README's pictures and to print
a study's report to PDF (:mod:`scintilab.dicom_results`). Nothing here downloads a browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def find_chromium() -> str | None:
    """Path of a headless-capable Chromium (Debian's ``chromium`` first), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome-headless-shell"):
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_render(
    page: str | os.PathLike[str],
    *,
    screenshot: str | os.PathLike[str] | None = None,
    window: tuple[int, int] = (1200, 2000),
    budget_ms: int = 10000,
    timeout: float = 180,
) -> str:
    """Load ``page`` in headless Chromium; return the DOM after scripts ran, and optionally
    save a screenshot.

    The browser gets no network services (background networking, sync, component updates
    off) and a throwaway profile, so a page that needs the internet shows it.

    Args:
        page: the HTML file.
        screenshot: PNG to write (a second browser run).
        window: viewport width and height in pixels for the screenshot.
        budget_ms: virtual time the page's scripts get before the DOM is taken.
        timeout: seconds before the browser is killed.

    Returns:
        The serialised DOM.

    Raises:
        RuntimeError: no Chromium, or it failed.
    """
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("no chromium on PATH (Debian: apt-get install chromium)")
    url = Path(page).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="scintilab-chromium-") as profile:
        base = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--mute-audio",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={int(budget_ms)}",
        ]
        proc = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise RuntimeError(f"chromium failed on {Path(page).name}: rc={proc.returncode} {proc.stderr[-1500:]}")
        if screenshot is not None:
            shot = Path(screenshot).resolve()
            proc2 = subprocess.run(
                base + [f"--screenshot={shot}", f"--window-size={window[0]},{window[1]}", url],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if proc2.returncode != 0 or not shot.exists():
                raise RuntimeError(f"chromium screenshot failed: rc={proc2.returncode} {proc2.stderr[-1500:]}")
        return proc.stdout
