"""A real `leadscore serve` process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

SCORING_KEY = "e2e-scoring-key"
ADMIN_KEY = "e2e-admin-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One service process; restartable on the same port, database and models folder."""

    def __init__(self, model_dir: Path, database_url: str, log_path: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model_dir = model_dir
        self.database_url = database_url
        self.log_path = log_path
        self.workers = workers
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> None:
        env = {
            **os.environ,
            "LEADSCORE_MODEL_DIR": str(self.model_dir),
            "LEADSCORE_DATABASE_URL": self.database_url,
            "LEADSCORE_API_KEYS": SCORING_KEY,
            "LEADSCORE_ADMIN_KEYS": ADMIN_KEY,
            "LEADSCORE_SCORE_LOG_FLUSH_S": "0.05",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "training.cli", "serve", "--port", str(self.port), "--workers", str(self.workers)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout_s}s: {self.log_path.read_text()[-3000:]}")

    def client(self, key: str = SCORING_KEY) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": key}, timeout=30)

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM: uvicorn finishes in-flight requests and the lifespan flushes the score log."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.terminate(timeout_s=30)
            except subprocess.TimeoutExpired:
                self.kill()


ServerFactory = Callable[..., Server]


@pytest.fixture()
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    servers: list[Server] = []

    def start(model_dir: Path, database_url: str | None = None, workers: int = 1) -> Server:
        server = Server(
            model_dir,
            database_url or f"sqlite:///{tmp_path / 'scores.db'}",
            tmp_path / f"server-{len(servers)}.log",
            workers,
        )
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()
