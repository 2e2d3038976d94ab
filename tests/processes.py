"""Waiting for a real server process a test started: its route answers 200, or the test fails with its log."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_for_ok(url: str, process: subprocess.Popen, log: Path, timeout_s: float, what: str) -> httpx.Response:
    """Poll ``url`` until it answers 200; fail at once, with the log's tail, if the process exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} not ready within {timeout_s}s:\n{log.read_text()[-3000:]}")
