"""A real headless Chromium for browser tests: Debian's package, installed when missing, driven by Playwright.

Playwright's own browser download is never used (`playwright install` would fetch a build from the internet);
it drives the system Chromium through `executable_path`. Chromium runs with a fresh profile and every
background network feature off, so a page that reaches for anything beyond the server under test fails loudly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_CANDIDATES = (Path("/usr/bin/chromium"), Path("/usr/bin/chromium-browser"))
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container has no user namespaces for the sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def running_as_root() -> bool:
    """Only root can install the Debian package."""
    return os.geteuid() == 0


def _locate_chromium() -> Path | None:
    return next((path for path in CHROMIUM_CANDIDATES if path.is_file()), None)


def _install_chromium() -> None:
    """Install Debian's chromium; only root can, and only when it is missing."""
    if not running_as_root() or shutil.which("apt-get") is None:
        raise RuntimeError("chromium not found at /usr/bin/chromium; install it (apt-get install chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, stdin=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        check=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def find_chromium() -> Path:
    """Where Chromium is, installing it first if this machine has none."""
    found = _locate_chromium()
    if found is None:
        _install_chromium()
        found = _locate_chromium()
    if found is None:
        raise RuntimeError("apt-get install chromium ran but no /usr/bin/chromium appeared")
    return found


@contextmanager
def headless_chromium() -> Iterator[object]:
    """A Playwright Browser on the system Chromium with a throwaway profile, closed afterwards."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    profile = Path(tempfile.mkdtemp(prefix="leadscore-chromium-"))
    try:
        with sync_playwright() as playwright:
            # launch_persistent_context is the only way to pass --user-data-dir; its context is the browser here
            context = playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(executable),
                headless=True,
                args=list(CHROMIUM_FLAGS),
                viewport={"width": 1280, "height": 900},
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
