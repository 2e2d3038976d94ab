"""compose.yaml runs two replicas behind nginx, wired to PostgreSQL and MLflow; its MLflow server really runs."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.engine import URL, make_url

from tests.container.dockerfile import env_pairs, parse_dockerfile
from tests.pg import PostgresServer
from tests.processes import wait_for_ok
from training.settings import TrainingSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
DEPLOYMENT = {"POSTGRES_PASSWORD": "s3cret-pw", "LEADSCORE_API_KEYS": "team-key-1,team-key-2"}
REPLICAS = ("leadscore-a", "leadscore-b")
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:\?|\?|:-|-)(?P<arg>[^}]*))?\}")


class MissingVariable(ValueError):
    """A ${NAME:?message} whose variable is not set: compose refuses to start, as it should for secrets."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${NAME}, ${NAME:-default}, ${NAME-default} and ${NAME:?error} over every string of the file."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        found = env.get(name)
        if op in (":?", "?") and (found is None or (op == ":?" and not found)):
            raise MissingVariable(f"{name}: {arg}")
        if op == ":-":
            return found or arg
        if op == "-":
            return arg if found is None else found
        return found or ""

    return _VARIABLE.sub(one, value)


def load_compose(env: dict[str, str] = DEPLOYMENT) -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")), env)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def service_env(compose: dict[str, Any], name: str) -> dict[str, str]:
    return {key: str(value) for key, value in compose["services"][name]["environment"].items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → named volume (or host path) of each volume line."""
    return {line.split(":")[1]: line.split(":")[0] for line in service.get("volumes", [])}


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def image_volumes() -> list[str]:
    final = parse_dockerfile(REPO / "Dockerfile")[-1]
    return [path for volume in final.all("VOLUME") for path in volume.operands()]


def image_env() -> dict[str, str]:
    final = parse_dockerfile(REPO / "Dockerfile")[-1]
    return dict(pair for instruction in final.all("ENV") for pair in env_pairs(instruction))


def test_two_replicas_a_proxy_and_their_stores(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {*REPLICAS, "proxy", "postgres", "mlflow"}
    assert services["postgres"]["image"] == "postgres:15"
    assert services["proxy"]["image"].startswith("nginx:")
    # MLflow runs from the service's own image: the same pinned mlflow as training, with the psycopg driver
    for name in (*REPLICAS, "mlflow"):
        assert services[name]["build"] == "." and services[name]["image"] == "leadscore:latest"
    first, second = (services[name] for name in REPLICAS)
    assert first["environment"] == second["environment"], "replicas differ only in their private volumes"


def nginx_config(compose: dict[str, Any]) -> str:
    """The proxy's configuration as nginx reads it: compose turns $$ into $."""
    (mounted,) = compose["services"]["proxy"]["configs"]
    assert mounted["target"].startswith("/etc/nginx/conf.d/") and mounted["target"].endswith(".conf")
    raw = compose["configs"][mounted["source"]]["content"]
    assert not re.search(r"(?<!\$)\$(?!\$)\w", raw), "a bare $variable would be replaced by compose"
    return raw.replace("$$", "$")


def test_the_proxy_spreads_requests_over_both_replicas_and_is_the_only_door(compose: dict[str, Any]) -> None:
    config = nginx_config(compose)
    upstream = re.search(r"upstream (\w+) \{(.*?)\}", config, re.S)
    assert upstream, config
    servers = re.findall(r"server ([\w-]+):(\d+)", upstream.group(2))
    port = image_env()["LEADSCORE_PORT"]
    assert sorted(servers) == sorted((name, port) for name in REPLICAS)
    assert f"proxy_pass http://{upstream.group(1)};" in config
    assert "proxy_next_upstream error timeout" in config, "a replica that is down is skipped"
    listen = re.search(r"listen (\d+);", config).group(1)
    services = compose["services"]
    assert services["proxy"]["ports"][0].endswith(f":{listen}")
    for name in REPLICAS:
        assert "ports" not in services[name], f"{name} is reached through the proxy only"
    assert {name: need["condition"] for name, need in services["proxy"]["depends_on"].items()} == dict.fromkeys(
        REPLICAS, "service_healthy"
    )
    body_limit = re.search(r"client_max_body_size (\d+)m;", config)
    assert body_limit and int(body_limit.group(1)) * 1024 * 1024 >= 16 * 1024 * 1024, "the service's own limit"


@pytest.mark.parametrize("replica", REPLICAS)
def test_the_score_log_goes_to_the_postgres_service(compose: dict[str, Any], replica: str) -> None:
    url = make_url(service_env(compose, replica)["LEADSCORE_DATABASE_URL"])
    postgres = service_env(compose, "postgres")
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port) == ("postgres", 5432)
    assert url.database == postgres["POSTGRES_DB"]
    assert (url.username, url.password) == (postgres["POSTGRES_USER"], DEPLOYMENT["POSTGRES_PASSWORD"])


def test_mlflow_keeps_its_runs_in_its_own_postgres_database(compose: dict[str, Any]) -> None:
    mlflow = service_env(compose, "mlflow")
    postgres = service_env(compose, "postgres")
    url = make_url(mlflow["MLFLOW_BACKEND_STORE_URI"])
    assert (url.host, url.port, url.username) == ("postgres", 5432, postgres["POSTGRES_USER"])
    assert url.database != postgres["POSTGRES_DB"], "MLflow's tables get a database of their own"
    # the postgres image runs this script on first start, which creates that database
    init = compose["services"]["postgres"]["configs"][0]
    assert init["target"].startswith("/docker-entrypoint-initdb.d/") and init["target"].endswith(".sql")
    script = compose["configs"][init["source"]]["content"]
    assert re.search(rf"CREATE DATABASE {url.database} OWNER {postgres['POSTGRES_USER']};", script)


@pytest.mark.parametrize("replica", REPLICAS)
def test_the_service_tracks_with_and_loads_from_the_mlflow_service(compose: dict[str, Any], replica: str) -> None:
    env = service_env(compose, replica)
    command = compose["services"]["mlflow"]["command"]
    assert command[:2] == ["mlflow", "server"] and option(command, "--host") == "0.0.0.0"
    tracking = make_url(env["LEADSCORE_MLFLOW_TRACKING_URI"].replace("http://", "http+x://"))
    assert (tracking.host, str(tracking.port)) == ("mlflow", option(command, "--port"))
    allowed = service_env(compose, "mlflow")["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert any(fnmatch(f"mlflow:{tracking.port}", host) for host in allowed), "MLflow refuses unknown Host headers"
    assert env["LEADSCORE_MODEL_URI"] == f"models:/{TrainingSettings().registered_model_name}@champion"
    assert float(env["LEADSCORE_RELOAD_INTERVAL_S"]) > 0, "the service picks up a new champion by itself"


def test_volumes_are_declared_and_cover_every_kind_of_state(compose: dict[str, Any]) -> None:
    services = compose["services"]
    used = {source for service in services.values() for source in mounts(service).values()}
    declared = set(compose["volumes"])
    assert used == declared, f"used {sorted(used)}, declared {sorted(declared)}"
    assert "/var/lib/postgresql/data" in mounts(services["postgres"])
    artifacts = service_env(compose, "mlflow")["MLFLOW_ARTIFACTS_DESTINATION"]
    assert any(artifacts.startswith(path + "/") for path in mounts(services["mlflow"]))
    for replica in REPLICAS:
        service_mounts = mounts(services[replica])
        for volume in image_volumes():
            assert volume in service_mounts, f"the image's volume {volume} is not mounted for {replica}"
    # the registry download and the compiled-trees cache are written by each replica: never shared
    first, second = (set(mounts(services[name]).values()) for name in REPLICAS)
    assert not first & second


def test_every_service_is_health_checked_and_waits_for_what_it_needs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
    assert "/health" in services["mlflow"]["healthcheck"]["test"][-1]
    assert "/healthz" in services["proxy"]["healthcheck"]["test"][-1]
    assert services["mlflow"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for replica in REPLICAS:
        assert "/healthz" in services[replica]["healthcheck"]["test"][-1]
        assert "LEADSCORE_PORT" in services[replica]["healthcheck"]["test"][-1]
        needs = services[replica]["depends_on"]
        assert {name: need["condition"] for name, need in needs.items()} == {
            "postgres": "service_healthy",
            "mlflow": "service_healthy",
        }


@pytest.mark.parametrize("secret", sorted(DEPLOYMENT))
def test_secrets_must_be_given_never_defaulted(secret: str) -> None:
    with pytest.raises(MissingVariable, match=secret):
        load_compose({k: v for k, v in DEPLOYMENT.items() if k != secret})
    assert DEPLOYMENT[secret] not in COMPOSE.read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def on_local_server(url: URL, server: PostgresServer, database: str) -> str:
    """The compose URL with its host, credentials and database swapped for the test's own PostgreSQL."""
    local = make_url(server.create_database(database))
    return (
        url.set(host=local.host, port=local.port, username=local.username, password=None)
        .set(database=local.database)
        .render_as_string(hide_password=False)
    )


def wait_for_health(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    wait_for_ok(f"{url}/health", process, log, timeout_s, "mlflow server")


@pytest.mark.slow
def test_the_mlflow_service_runs_on_postgres_and_hands_the_champion_to_the_service(
    compose: dict[str, Any], pg_server: PostgresServer, tmp_path: Path
) -> None:
    from service.champion import resolve_bundle_dir
    from service.settings import ServiceSettings
    from training.bundle import load_bundle
    from training.synthetic import write_sample

    mlflow_env = service_env(compose, "mlflow")
    command = list(compose["services"]["mlflow"]["command"])
    port = free_port()
    command[command.index("--host") + 1], command[command.index("--port") + 1] = "127.0.0.1", str(port)
    command[0] = str(Path(sys.executable).parent / "mlflow")
    backend = make_url(mlflow_env["MLFLOW_BACKEND_STORE_URI"])
    env = os.environ | mlflow_env
    env["MLFLOW_BACKEND_STORE_URI"] = on_local_server(backend, pg_server, f"mlflow_{uuid.uuid4().hex[:12]}")
    env["MLFLOW_ARTIFACTS_DESTINATION"] = str(tmp_path / "mlartifacts")
    log = tmp_path / "mlflow.log"
    with log.open("wb") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, server, log)
        search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
        assert httpx.get(search, headers={"Host": "mlflow:5000"}, timeout=10).status_code == 200
        assert httpx.get(search, headers={"Host": "elsewhere.example"}, timeout=10).status_code == 403

        data = tmp_path / "leads.csv"
        spec = write_sample(data, rows=3_000, seed=8)
        trained = subprocess.run(
            [sys.executable, "-m", "training.cli", "train", "--data", str(data), "--spec", str(spec)],
            env=os.environ | {"LEADSCORE_MLFLOW_TRACKING_URI": url, "LEADSCORE_MODELS_DIR": str(tmp_path / "models")},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert trained.returncode == 0, trained.stdout + trained.stderr
        champion = load_bundle(tmp_path / "models" / "champion")

        leadscore_env = service_env(compose, REPLICAS[0])
        settings = ServiceSettings(
            model_uri=leadscore_env["LEADSCORE_MODEL_URI"],
            mlflow_tracking_uri=url,
            model_dir=tmp_path / "service-models" / "champion",
        )
        assert load_bundle(resolve_bundle_dir(settings)).version == champion.version
    finally:
        server.terminate()
        server.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)  # its workers, should any outlive the server
