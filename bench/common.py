"""Shared benchmark helpers: a trained bundle, a free port, a server process, wrk, and table printing."""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def ensure_wrk() -> str:
    """Debian's wrk: installed on first use (the benchmark machine is ours, as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "wrk"


def scratch_dir(name: str) -> Path:
    """A temporary folder removed when the benchmark exits: a serving run leaves gigabytes of score log."""
    folder = Path(tempfile.mkdtemp(prefix=f"leadscore-bench-{name}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_bundle(rows: int, seed: int, work: Path, families: tuple[str, ...] | None = None) -> Path:
    """A real bundle (no MLflow needed) trained on generated leads; ``families`` narrows the candidates."""
    from training.bundle import save_bundle
    from training.data import prepare_leads
    from training.spec import read_spec
    from training.synthetic import generate_leads
    from training.train import TrainOptions, fit_and_evaluate

    table = prepare_leads(generate_leads(rows, seed), read_spec(REPO / "data/specs/sample.yaml"))
    fitted = fit_and_evaluate(table, TrainOptions(families=families) if families else TrainOptions())
    target = work / fitted.bundle.version
    save_bundle(fitted.bundle, target)
    shutil.rmtree(fitted.plots_dir, ignore_errors=True)
    return target


@dataclass
class ServerProcess:
    process: subprocess.Popen
    url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(command: list[str], env: dict[str, str], ready_path: str, port: int) -> ServerProcess:
    log = tempfile.NamedTemporaryFile(prefix="leadscore-bench-", suffix=".log", delete=False)  # noqa: SIM115 (the child writes it)
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {Path(log.name).read_text()[-2000:]}")
        try:
            if httpx.get(url + ready_path, timeout=1).status_code == 200:
                return ServerProcess(process, url)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server not ready: {Path(log.name).read_text()[-2000:]}")


@dataclass(frozen=True)
class WrkResult:
    requests: int  # answered within the run
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency_ms(text: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def run_wrk(url: str, body: bytes, seconds: int, connections: int, threads: int = 1) -> WrkResult:
    """POST the same JSON body as fast as wrk can, bounded in time, on loopback."""
    with tempfile.TemporaryDirectory() as folder:
        body_file = Path(folder) / "body.json"
        body_file.write_bytes(body)
        script = Path(folder) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'local f = io.open("{body_file}", "rb"); wrk.body = f:read("*all"); f:close()\n'
            "function done(summary, latency, requests)\n"
            '  io.write(string.format("non2xx %d\\n", summary.errors.status))\n'
            "end\n"
        )
        out = subprocess.run(
            [
                ensure_wrk(),
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = int(re.search(r"non2xx (\d+)", out).group(1))
    answered = int(re.search(r"(\d+) requests in", out).group(1))
    return WrkResult(answered, rate, _latency_ms(out, "50"), _latency_ms(out, "99"), socket_errors + non2xx)


def markdown_table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A titled Markdown table with padded columns."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    lines = [
        f"### {title}",
        "",
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    return "\n".join(lines)


def print_table(title: str, header: list[str], rows: list[list[str]]) -> str:
    text = markdown_table(title, header, rows)
    print(text, flush=True)
    return text


def save_results(name: str, data: dict) -> None:
    folder = REPO / "bench" / "results"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")


def python() -> str:
    return sys.executable
