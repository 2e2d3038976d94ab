"""The image's install and start commands, run in a fresh virtual environment exactly as the Dockerfile runs them.

No Docker engine runs here, so the test does what the builder and `docker run` would: it reads the Dockerfile,
copies what it COPYs, runs its RUN lines (the build stage's python and pip commands; the final stage's apt-get
and useradd are system setup this machine already has), applies its ENV, trains a model with the command line
it installed, starts its CMD with API keys as a deployment sets them, and probes it with its HEALTHCHECK.
Every image path (/opt, /src, /app) is moved under a temporary root, so nothing touches this machine's folders.
Two pip options differ, for speed only: `--no-cache-dir` is dropped so pip's cache serves reruns, and
`--no-compile` skips writing bytecode, half the install time, which changes nothing but the first import's speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name

from tests.container.dockerfile import Instruction, Stage, env_pairs, expand, healthcheck_command, parse_dockerfile
from tests.container.test_requirements import pins
from tests.processes import wait_for_ok

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
SCORING_KEY = "image-scoring-key-0123"
ADMIN_KEY = "image-admin-key-4567"
INSTALL_TIMEOUT_S = 1_500
START_TIMEOUT_S = 120
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
Running = tuple[subprocess.Popen, Path]  # the container's process and its log
# Python 3.11's venv seeds pip and setuptools; leadscore itself is installed from the copied sources.
VENV_SEEDED = {"pip", "setuptools", "leadscore"}
# The host's own settings that must not leak into the image's environment.
HOST_ONLY = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PROMETHEUS_MULTIPROC_DIR")


@dataclass(frozen=True)
class ImageRoot:
    """A temporary folder standing for the image's /: image paths are rewritten to live beneath it."""

    root: Path
    prefixes: tuple[str, ...]

    def rebase(self, text: str) -> str:
        pattern = r"(?<![\w.-])(" + "|".join(re.escape(p) for p in self.prefixes) + r")(?=[/\s\"':]|$)"
        return re.sub(pattern, lambda match: str(self.root) + match.group(1), text)

    def local(self, path: str) -> Path:
        return Path(self.rebase(path))

    def check_confined(self, command: str) -> None:
        """Refuse to run a command that names an absolute path outside the temporary root."""
        for word in shlex.split(command):
            if word.startswith("/"):
                assert word.startswith(str(self.root)), f"{command!r} reaches {word} outside the image root"


@dataclass
class Container:
    """What the final stage leaves configured: its environment, folder, health check and command."""

    env: dict[str, str]
    workdir: Path
    healthcheck: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


def image_prefixes(stages: list[Stage]) -> tuple[str, ...]:
    """Top-level folders the image creates: from WORKDIR, VOLUME, and absolute COPY destinations."""
    paths = []
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.keyword in ("WORKDIR", "VOLUME"):
                paths += instruction.operands()
            elif instruction.keyword == "COPY":
                paths += [word for word in instruction.operands() if word.startswith("/")]
    return tuple(sorted({"/" + Path(path).parts[1] for path in paths if path.startswith("/")}))


def base_env(shim: Path, home: Path) -> dict[str, str]:
    """The base image's environment: its python first on PATH; the host's pip settings reach the same registries."""
    env = {key: value for key, value in os.environ.items() if key not in HOST_ONLY and not key.startswith("LEADSCORE_")}
    return env | {"PATH": f"{shim}:{SYSTEM_PATH}", "HOME": str(home), "LANG": "C.UTF-8"}


def python_shim(folder: Path) -> Path:
    """`python` as the base image has it: the plain interpreter, not this test's virtual environment."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "python").symlink_to(Path(sys._base_executable).resolve())
    return folder


def apply_env(instruction: Instruction, env: dict[str, str], image: ImageRoot) -> None:
    for key, value in env_pairs(instruction):
        env[key] = expand(image.rebase(value), env)


def copy_sources(instruction: Instruction, workdir: Path, image: ImageRoot) -> None:
    """COPY from the build context (the repository), as the builder would."""
    *sources, target = instruction.operands()
    destination = image.local(target) if target.startswith("/") else workdir / target
    into_folder = target.endswith("/") or len(sources) > 1
    for source in sources:
        origin = REPO / source
        if origin.is_dir():
            shutil.copytree(origin, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            path = destination / origin.name if into_folder else destination
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(origin, path)


def run_step(command: str, workdir: Path, env: dict[str, str], image: ImageRoot) -> None:
    """One build RUN line through sh, as the builder runs it; only python and pip belong in the build stage."""
    command = image.rebase(command).replace("--no-cache-dir ", "").replace("pip install ", "pip install --no-compile ")
    assert shlex.split(command)[0] in {"python", "pip"}, f"unexpected build step {command!r}; extend this test"
    image.check_confined(command)
    result = subprocess.run(
        ["sh", "-c", command], cwd=workdir, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def build(stage: Stage, image: ImageRoot, env: dict[str, str]) -> dict[str, str]:
    """Every instruction of the build stage; returns the environment it ends with."""
    workdir = image.root  # the image's /, where RUN starts before any WORKDIR
    workdir.mkdir(parents=True, exist_ok=True)
    for instruction in stage.instructions:
        if instruction.keyword == "ENV":
            apply_env(instruction, env, image)
        elif instruction.keyword == "WORKDIR":
            workdir = image.local(expand(instruction.args, env))
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "COPY":
            copy_sources(instruction, workdir, image)
        elif instruction.keyword == "RUN":
            run_step(instruction.args, workdir, env, image)
        else:
            pytest.fail(f"line {instruction.line}: {instruction.keyword} in the build stage is not handled here")
    return env


def configure(stage: Stage, build_stage: Stage, image: ImageRoot, env: dict[str, str]) -> Container:
    """The final stage: ENV, WORKDIR, VOLUME, HEALTHCHECK and CMD; its system RUN lines are already met here."""
    container = Container(env=env, workdir=image.root)
    for instruction in stage.instructions:
        keyword = instruction.keyword
        if keyword == "RUN":
            assert "pip" not in instruction.args, "Python packages are installed in the build stage only"
        elif keyword == "COPY":
            source, target = instruction.operands()
            assert instruction.flags().get("from") == build_stage.name and source == target
        elif keyword == "ENV":
            apply_env(instruction, env, image)
        elif keyword == "WORKDIR":
            container.workdir = image.local(expand(instruction.args, env))
            container.workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "VOLUME":
            for volume in instruction.operands():
                image.local(volume).mkdir(parents=True, exist_ok=True)
        elif keyword == "HEALTHCHECK":
            container.healthcheck = [image.rebase(word) for word in healthcheck_command(instruction)]
        elif keyword == "CMD":
            container.command = [image.rebase(word) for word in instruction.exec_form() or []]
        elif keyword not in ("USER", "EXPOSE"):  # one user here; ports are chosen per test
            pytest.fail(f"line {instruction.line}: {keyword} in the final stage is not handled here")
    return container


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen, log: Path) -> httpx.Response:
    return wait_for_ok(f"{url}/readyz", process, log, START_TIMEOUT_S, "the container command")


def installed_versions(python: Path) -> dict[str, str]:
    result = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return {canonicalize_name(row["name"]): row["version"] for row in json.loads(result.stdout)}


def copied_venv(final: Stage) -> str:
    """The folder the final stage copies from the build stage: the virtual environment."""
    copies = [copy.operands()[0] for copy in final.all("COPY") if "from" in copy.flags()]
    assert len(copies) == 1, "the final stage copies exactly one thing, the virtual environment"
    return copies[0]


def assert_only_pins_installed(python: Path) -> None:
    installed = installed_versions(python)
    pinned = pins()
    unpinned = {name: v for name, v in installed.items() if name not in pinned and name not in VENV_SEEDED}
    assert not unpinned, f"installed but not pinned in requirements/runtime.txt: {unpinned}"
    assert {name: installed.get(name) for name in pinned} == pinned
    assert "pytest" not in installed and "ruff" not in installed


def train_with_the_image(env: dict[str, str], models: Path, work: Path) -> str:
    """What a team does after `docker build`: train with the image's own command line into the models volume."""
    data = work / "data" / "leads.csv"
    settings = {"LEADSCORE_MODELS_DIR": str(models), "LEADSCORE_MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    for command in (
        ["leadscore", "generate", "--rows", "3000", "--seed", "4", "--out", str(data)],
        ["leadscore", "train", "--data", str(data), "--spec", str(data.with_name("leads.spec.yaml"))],
    ):
        done = subprocess.run(command, env=env | settings, cwd=work, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((models / "champion" / "bundle.json").read_text())["version"]


def probe(url: str, container: Container, env: dict[str, str], champion: str, running: Running) -> None:
    """Ready with the trained champion, healthy by the image's own check, scoring only with a key."""
    ready = wait_until_ready(url, *running)
    assert ready.json()["model_version"] == champion
    health = subprocess.run(container.healthcheck, env=env, capture_output=True, timeout=30)
    assert health.returncode == 0, health.stderr
    lead = {"lead_source": "referral", "owns_home": True, "pages_viewed": 12}
    scored = httpx.post(f"{url}/v1/leads/score", json=lead, headers={"X-API-Key": SCORING_KEY}, timeout=30)
    assert scored.status_code == 200, scored.text
    assert 0 < scored.json()["probability"] < 1
    assert httpx.post(f"{url}/v1/leads/score", json=lead, timeout=30).status_code == 401


@pytest.mark.slow
def test_the_image_installs_and_serves_a_model(tmp_path: Path) -> None:
    stages = parse_dockerfile(DOCKERFILE)
    image = ImageRoot(tmp_path / "image", image_prefixes(stages))
    shim = python_shim(tmp_path / "base-bin")
    home = tmp_path / "home"
    home.mkdir()

    # docker build; the host's HOME keeps pip's cache for the build steps
    build(stages[0], image, base_env(shim, Path(os.environ.get("HOME", home))))
    container = configure(stages[-1], stages[0], image, base_env(shim, home))
    assert_only_pins_installed(image.local(copied_venv(stages[-1])) / "bin" / "python")
    champion = train_with_the_image(container.env, Path(container.env["LEADSCORE_MODEL_DIR"]).parent, tmp_path)

    # docker run -e LEADSCORE_API_KEYS=... -e LEADSCORE_ADMIN_KEYS=...: the CMD as the image runs it
    port = free_port()
    keys = {"LEADSCORE_API_KEYS": SCORING_KEY, "LEADSCORE_ADMIN_KEYS": ADMIN_KEY, "LEADSCORE_PORT": str(port)}
    env = container.env | keys
    log = tmp_path / "container.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            container.command,
            env=env,
            cwd=container.workdir,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        probe(f"http://127.0.0.1:{port}", container, env, champion, (process, log))
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # anything of ours left behind, were the shell not to exec

    output = log.read_text()
    assert code in (0, -signal.SIGTERM), output[-3000:]  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert "Application shutdown complete" in output
    # exec in the CMD: the shell handed its process to the service, so SIGTERM reached the service itself
    assert f"Started server process [{process.pid}]" in output
    with sqlite3.connect(env["LEADSCORE_DATABASE_URL"].removeprefix("sqlite:///")) as db:
        assert db.execute("select count(*) from scores").fetchone()[0] == 1  # flushed on the way down
    down = subprocess.run(container.healthcheck, env=env, capture_output=True, timeout=30)
    assert down.returncode != 0, "the health check must fail when the service is down"
