"""How the service is run: uvicorn, and with several workers one listening socket per worker.

uvicorn's workers share one listening socket, and whichever worker wakes first accepts every connection
waiting. A caller that opens a few keep-alive connections at once therefore often lands on one worker
while the others idle: with 2 workers and 4 or 8 connections, one worker took them all in about half of
the benchmark runs, halving batch throughput. Here each worker binds its own socket with SO_REUSEPORT,
and the kernel spreads new connections over the workers by a hash of the address pair.
"""

from __future__ import annotations

import errno
import importlib.util
import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from training.errors import LeadscoreError


def run_server(app: str, host: str, port: int, workers: int = 1, access_log: bool = False, **options: Any) -> None:
    """Serve the ASGI app factory ``module:function`` until stopped (uvloop and httptools when installed)."""
    settings: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "auto",
        "http": "httptools" if importlib.util.find_spec("httptools") else "auto",
        "access_log": access_log,
        **options,
    }
    # checked before the app loads: uvicorn would load the model first, then log a traceback and exit 3
    _check_port_is_free(host, port)
    if workers == 1:
        uvicorn.run(app, **settings)
        return
    placeholder = _SocketPerWorker(host, port)
    try:
        Multiprocess(uvicorn.Config(app, **settings), sockets=[placeholder]).run()
    finally:
        placeholder.close()


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) beside the other workers' (SO_REUSEPORT); the server makes it listen."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class _SocketPerWorker(socket.socket):
    """Stands in for the listening socket that uvicorn hands to each worker process: unpickled in the
    worker, it becomes that worker's own SO_REUSEPORT socket on the same address."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(_family(host), socket.SOCK_STREAM)
        self.address = (host, port)

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return reuse_port_socket, self.address


def _check_port_is_free(host: str, port: int) -> None:
    """Fail at once if anything listens there: SO_REUSEPORT alone would let a second server share the port."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise LeadscoreError(f"cannot listen on {host}:{port}: {reason}") from None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
