"""The launcher: one SO_REUSEPORT socket per worker, and a clear refusal when the port is taken."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from service.server import _SocketPerWorker, run_server
from training.errors import LeadscoreError


def test_each_worker_unpickles_its_own_socket_on_the_shared_address() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    placeholder = _SocketPerWorker("127.0.0.1", port)
    workers = [pickle.loads(pickle.dumps(placeholder)) for _ in range(2)]  # as uvicorn hands it to two workers
    try:
        for sock in workers:
            sock.listen()
            assert sock.getsockname() == ("127.0.0.1", port)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert workers[0].fileno() != workers[1].fileno()
    finally:
        for sock in [placeholder, *workers]:
            sock.close()


def test_a_port_someone_listens_on_is_refused_before_any_worker_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LeadscoreError, match=f"127.0.0.1:{port}: already in use"):
            run_server("service.app:create_app", "127.0.0.1", port, workers=2)


def test_serve_on_a_busy_port_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = subprocess.run(
            [sys.executable, "-m", "training.cli", "serve", "--port", str(port)],
            env={
                **os.environ,
                "LEADSCORE_API_KEYS": "a-key",
                "LEADSCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'scores.db'}",
                "LEADSCORE_MODEL_DIR": str(tmp_path / "models" / "champion"),
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert served.returncode == 2, served.stderr
    assert served.stderr.strip().splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: already in use"]
