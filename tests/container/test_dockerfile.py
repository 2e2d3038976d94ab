"""The Dockerfile passes hadolint and keeps its essentials: slim Python 3.11, two stages, non-root, health, volumes."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.container.dockerfile import Stage, env_pairs, healthcheck_command, parse_dockerfile

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
RUNTIME_REQUIREMENTS = "requirements/runtime.txt"
DEV_TOOLS = ("pytest", "ruff", "httpx", "hadolint", "ipykernel", "nbclient", "hypothesis")


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE)


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def final_env(final: Stage) -> dict[str, str]:
    return dict(pair for instruction in final.all("ENV") for pair in env_pairs(instruction))


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), "hadolint is missing: install the dev dependencies (pip install -e '.[dev]')"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_stages_start_from_the_same_slim_python_311(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "build the virtual environment in one stage and copy it into a clean one"
    bases = {stage.base for stage in stages}
    assert len(bases) == 1, f"the venv is copied between stages, so they need one base image; got {bases}"
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", bases.pop())


def test_the_service_runs_as_an_unprivileged_user(final: Stage) -> None:
    user = final.last("USER")
    assert user is not None, "the final stage must switch to a non-root USER"
    name = user.args.split(":")[0]
    assert name not in {"root", "0"}
    assert name.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"
    cmd = final.last("CMD")
    assert cmd is not None and user.line < cmd.line


def test_the_final_stage_holds_only_runtime_dependencies(stages: list[Stage], final: Stage) -> None:
    for run in final.all("RUN"):
        assert "pip" not in run.args, f"line {run.line}: install Python packages in the build stage"
    for copy in final.all("COPY"):
        assert copy.flags().get("from") == stages[0].name, f"line {copy.line}: copy only the built venv"
    installs = [run.args for stage in stages for run in stage.all("RUN") if "pip install" in run.args]
    assert any(f"-r {RUNTIME_REQUIREMENTS}" in args for args in installs)
    assert all("-r " not in args or f"-r {RUNTIME_REQUIREMENTS}" in args for args in installs)
    assert any(args.endswith("--no-deps .") for args in installs), "the package itself adds no unpinned deps"
    assert not any(tool in args for args in installs for tool in DEV_TOOLS)
    assert all("[dev]" not in args for args in installs)


def test_health_is_checked_with_python_on_healthz(final: Stage) -> None:
    check = final.last("HEALTHCHECK")
    assert check is not None
    command = healthcheck_command(check)
    assert command[0] == "python", "the slim image has no curl or wget"
    assert "/healthz" in command[-1]
    assert "LEADSCORE_PORT" in command[-1], "probe the port the service listens on"


def test_models_and_data_live_on_volumes(final: Stage) -> None:
    env = final_env(final)
    volumes = [path for volume in final.all("VOLUME") for path in volume.operands()]
    assert any(env["LEADSCORE_MODEL_DIR"].startswith(volume + "/") for volume in volumes)
    database = env["LEADSCORE_DATABASE_URL"].removeprefix("sqlite:///")
    assert any(database.startswith(volume + "/") for volume in volumes), "the SQLite score log must survive"
    assert any(env["LEADSCORE_CACHE_DIR"].startswith(volume + "/") for volume in volumes)


def test_the_command_serves_every_interface_with_configurable_workers(final: Stage) -> None:
    env = final_env(final)
    command = final.last("CMD")
    assert command is not None
    words = command.exec_form()
    assert words is not None and words[:2] == ["sh", "-c"]
    script = words[2]
    assert script.startswith("exec "), "without exec, sh keeps PID 1 and the service never sees SIGTERM"
    assert "--host 0.0.0.0" in script
    assert '--workers "$LEADSCORE_WORKERS"' in script and int(env["LEADSCORE_WORKERS"]) >= 1
    assert '--port "$LEADSCORE_PORT"' in script
    exposed = [port for expose in final.all("EXPOSE") for port in expose.operands()]
    assert env["LEADSCORE_PORT"] in exposed
    assert "LEADSCORE_API_KEYS" not in env, "keys are secrets: pass them at run time, never bake them in"


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether a context path is excluded (plain patterns only, which is all .dockerignore uses here)."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pattern) for pattern in patterns for prefix in prefixes)


def test_dockerignore_keeps_state_out_and_sources_in(stages: list[Stage]) -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip()]
    patterns = [p for p in patterns if not p.startswith("#")]
    for private in (".git", ".venv", ".env", "models/champion", "data/sample/leads.csv", "mlflow.db", "mlruns"):
        assert dockerignored(private, patterns), f"{private} must not reach the build context"
    copied = [
        source
        for stage in stages
        for copy in stage.all("COPY")
        if "from" not in copy.flags()
        for source in copy.operands()[:-1]
    ]
    assert copied, "the build stage copies the sources from the context"
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert not dockerignored(source, patterns), f"COPY {source} is excluded by .dockerignore"
