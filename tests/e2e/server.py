"""A real `leadscore serve` process on a free loopback port: start, kill -9, SIGTERM, restart on the same port.

Shared by the end-to-end tests, the reliability suites and the benchmarks that drive a real server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SCORING_KEY = "e2e-scoring-key"
ADMIN_KEY = "e2e-admin-key"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One service process; restartable on the same port, database and models folder."""

    def __init__(
        self,
        model_dir: Path,
        database_url: str,
        log_path: Path,
        workers: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model_dir = model_dir
        self.database_url = database_url
        self.log_path = log_path
        self.workers = workers
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        """The server's process id (with one worker, the process that serves requests)."""
        assert self.process is not None
        return self.process.pid

    def environment(self) -> dict[str, str]:
        """The variables the server starts with: keys, model, database, then the caller's overrides."""
        env = {
            **os.environ,
            "LEADSCORE_MODEL_DIR": str(self.model_dir),
            "LEADSCORE_DATABASE_URL": self.database_url,
            "LEADSCORE_API_KEYS": SCORING_KEY,
            "LEADSCORE_ADMIN_KEYS": ADMIN_KEY,
            "LEADSCORE_SCORE_LOG_FLUSH_S": "0.05",
            **self.extra_env,
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return env

    def start(self, timeout_s: float = 60, ready_status: int = 200) -> None:
        """Start the process and wait until /readyz answers `ready_status` (503: started without a model)."""
        with self.log_path.open("ab") as log:
            command = ["-m", "training.cli", "serve", "--port", str(self.port), "--workers", str(self.workers)]
            self.process = subprocess.Popen(
                [sys.executable, *command],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == ready_status:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout_s}s: {self.log_text()[-3000:]}")

    def client(self, key: str = SCORING_KEY, timeout_s: float = 30) -> httpx.Client:
        """An HTTP client with a key already set."""
        return httpx.Client(base_url=self.url, headers={"X-API-Key": key}, timeout=timeout_s)

    def log_text(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM: uvicorn finishes in-flight requests and the lifespan flushes the score log."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs at all."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop if still running: SIGTERM, then SIGKILL if that takes too long."""
        if self.process is not None and self.process.poll() is None:
            try:
                self.terminate(timeout_s=30)
            except subprocess.TimeoutExpired:
                self.kill()
