"""Fixtures for the reliability suites: real servers (from the end-to-end fixtures) and the figures summary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import Trained
from tests.e2e.conftest import start_server
from tests.e2e.server import Server
from tests.reliability.figures import FIGURES

__all__ = ["start_server"]


@contextmanager
def suite_server(
    tmp_path_factory: pytest.TempPathFactory, trained: Trained, name: str, database_url: str | None = None
) -> Iterator[Server]:
    """One real server over the session's model and a score log of its own (SQLite unless a URL is given),
    for a whole test module."""
    folder = tmp_path_factory.mktemp(name)
    server = Server(trained.bundle_dir, database_url or f"sqlite:///{folder / 'scores.db'}", folder / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the suites measured (requests, errors, latency, memory), whatever the outcome of the tests."""
    if FIGURES:
        terminalreporter.section("reliability figures")
        for table in FIGURES:
            terminalreporter.write_line(table)
            terminalreporter.write_line("")
