"""A real PostgreSQL server for tests: initdb into a temporary folder, served on a free loopback port, stopped reliably.

As root (initdb refuses root) the server runs as the `postgres` system user, in a short private folder that user owns.
`stop()` and `start()` keep the data directory, so a fault test can take the server down and bring it back.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

PG_VERSION = 15
PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
DEFAULT_DATABASE = "leadscore"
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15
PORT_ATTEMPTS = 3
# Tests need no crash safety against power loss; a killed server still recovers (the OS keeps its writes).
SERVER_SETTINGS = ("fsync=off", "max_connections=200")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def running_as_root() -> bool:
    """initdb refuses root, so as root the server runs as the postgres system user."""
    return os.geteuid() == 0


def _locate_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: version 15 first, then any other installed version, then PATH."""
    candidates = [PG_ROOT / str(PG_VERSION) / "bin", *sorted(PG_ROOT.glob("*/bin"), reverse=True)]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


def _install_postgres() -> None:
    """Install the Debian package; only root can, and only when the binaries are missing."""
    if not running_as_root() or shutil.which("apt-get") is None:
        raise RuntimeError(
            f"PostgreSQL {PG_VERSION} binaries not found under {PG_ROOT}; install them (apt-get install postgresql)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, stdin=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "postgresql"], check=True, env=env, stdin=subprocess.DEVNULL)


def find_bin_dir() -> Path:
    """Where the server binaries are, installing them first if this machine has none."""
    found = _locate_bin_dir()
    if found is None:
        _install_postgres()
        found = _locate_bin_dir()
    if found is None:
        raise RuntimeError(f"apt-get install postgresql ran but no initdb/pg_ctl appeared under {PG_ROOT}")
    return found


def _as_user(user: str | None, command: list[str]) -> list[str]:
    """The command line that runs `command` as `user` (None: as ourselves)."""
    if user is None:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *command]
    return ["su", user, "-s", "/bin/sh", "-c", shlex.join(command)]


class PostgresServer:
    """One throwaway PostgreSQL cluster in a folder of its own, reachable at 127.0.0.1:port with trust auth."""

    def __init__(self, work_dir: Path, port: int | None = None, bin_dir: Path | None = None) -> None:
        self.work_dir = work_dir
        self.data_dir = work_dir / "data"
        self.socket_dir = work_dir / "sock"
        self.log_file = work_dir / "postgres.log"
        self.port = port or free_port()
        self.bin_dir = bin_dir or find_bin_dir()
        self.os_user = SUPERUSER if running_as_root() else None

    @property
    def url(self) -> str:
        """The `leadscore` database, created on first start."""
        return self.url_for(DEFAULT_DATABASE)

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of a database on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Initialise the cluster on first use, then start it and wait until it accepts connections."""
        if self.is_running():
            return
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            self._initdb()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT_S), "-l", str(self.log_file), "-o", self._options())
                break
            except RuntimeError:
                if not fresh or attempt == PORT_ATTEMPTS:  # a restart keeps its port: the URLs handed out stay valid
                    raise
                self.port = free_port()  # someone took the port between probing and binding; try another
        atexit.register(self.stop)
        if fresh:
            self.create_database(DEFAULT_DATABASE)

    def stop(self) -> None:
        """Stop fast (clients disconnected, clean shutdown); kill the server's process group if that fails."""
        atexit.unregister(self.stop)
        if not self.is_running():
            return
        try:
            self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(STOP_TIMEOUT_S))
        except (RuntimeError, subprocess.TimeoutExpired):
            self._kill()

    def is_running(self) -> bool:
        """Whether the postmaster named in the data directory's pid file is alive."""
        pid = self._postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def create_database(self, name: str) -> str:
        """A fresh, empty database on this server, so each test starts clean; returns its URL."""
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True, connect_timeout=5
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def _options(self) -> str:
        """Server flags: our own socket folder, loopback only, this port, test-speed settings."""
        settings = " ".join(f"-c {s}" for s in SERVER_SETTINGS)
        return f"-k {self.socket_dir} -h 127.0.0.1 -p {self.port} {settings}"

    def _initdb(self) -> None:
        """A new cluster owned by the server's OS user, trusting local and loopback connections."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.os_user:
            shutil.chown(self.work_dir, self.os_user)
            shutil.chown(self.socket_dir, self.os_user)
        self._run(
            "initdb", "-D", str(self.data_dir), "-A", "trust", "-U", SUPERUSER,
            "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip

    def _pg_ctl(self, *args: str) -> None:
        """pg_ctl on this data directory."""
        self._run("pg_ctl", "-D", str(self.data_dir), *args)

    def _run(self, program: str, *args: str) -> None:
        """Run a server binary as the server's OS user; a failure carries its output and the log's tail."""
        command = _as_user(self.os_user, [str(self.bin_dir / program), *args])
        done = subprocess.run(
            command, cwd=self.work_dir, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=START_TIMEOUT_S + 30,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args[:3])}... failed ({done.returncode}): {done.stderr.strip()}\n"
                f"server log tail:\n{self._log_tail()}"
            )

    def _log_tail(self, lines: int = 20) -> str:
        """The end of the server log, so a failed start explains itself."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _postmaster_pid(self) -> int | None:
        """The server's pid from postmaster.pid, None when it is not running (or never ran)."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def _kill(self) -> None:
        """SIGKILL the postmaster and its backends (pg_ctl makes it a process-group leader), then wait for them."""
        pid = self._postmaster_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.is_running() and time.monotonic() < deadline:
            time.sleep(0.05)


def _server_dir(tmp_dir: Path) -> tuple[Path, bool]:
    """A folder the server user can reach with a short path (sockets allow ~100 characters); True if ours to delete."""
    if not running_as_root() and len(str(tmp_dir)) < 70:
        work_dir = tmp_dir / "postgres"
        work_dir.mkdir(parents=True, exist_ok=True)
        return work_dir, False
    # pytest's folders are private to root, so the postgres user could not enter them.
    return Path(tempfile.mkdtemp(prefix="leadscore-pg-")), True


@contextmanager
def running_postgres(tmp_dir: Path) -> Iterator[PostgresServer]:
    """A server for the duration of the block, always stopped (and its private folder removed) afterwards."""
    work_dir, owned = _server_dir(tmp_dir)
    server = PostgresServer(work_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if owned:
            shutil.rmtree(work_dir, ignore_errors=True)
