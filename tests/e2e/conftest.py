"""A real `leadscore serve` process on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.server import ADMIN_KEY, SCORING_KEY, Server, free_port

__all__ = ["ADMIN_KEY", "SCORING_KEY", "Server", "ServerFactory", "free_port"]

ServerFactory = Callable[..., Server]


@pytest.fixture()
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start real servers for one test (each on its own port and log); all stopped afterwards."""
    servers: list[Server] = []

    def start(
        model_dir: Path,
        database_url: str | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        ready_status: int = 200,
    ) -> Server:
        server = Server(
            model_dir,
            database_url or f"sqlite:///{tmp_path / 'scores.db'}",
            tmp_path / f"server-{len(servers)}.log",
            workers,
            env,
        )
        servers.append(server)
        server.start(ready_status=ready_status)
        return server

    yield start
    for server in servers:
        server.stop()
