"""Security: who may call what, secrets and personal data that must never leak, limits, and where bundles come from.

Already proved elsewhere and referenced in the reliability table (docs/reliability.md): 401/403 on the routes listed in
tests/service/test_api.py (test_reader_routes_need_a_key, test_admin_route_needs_an_admin_key,
test_open_access_serves_reads_but_disables_admin), 413 for bodies and batches in-process
(test_oversized_bodies_get_413, test_batch_limits_and_shape), and PII kept out of the SQLite score log for
one lead (test_pii_is_accepted_but_never_stored). Here the same promises are checked on every route the app
has, over a real server, and on every path a lead can take.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

from tests.conftest import ADMIN_KEY, SCORING_KEY, AppFactory, ModelsFolder
from tests.e2e.conftest import ServerFactory
from tests.e2e.server import ADMIN_KEY as SERVER_ADMIN_KEY
from tests.e2e.server import SCORING_KEY as SERVER_SCORING_KEY
from tests.e2e.server import Server
from tests.reliability.figures import report
from tests.reliability.load import lead_records, wait_for_score_log
from training.bundle import FORMAT_VERSION, library_versions

# /metrics is open to loopback callers and needs a key from elsewhere (the test client counts as elsewhere)
PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# the sales-ops and qualify page shells, their packaged files and whether they must ask for a key: no data
# (service/dashboard.py); the data they show comes from reader routes
PUBLIC |= {"/", "/dashboard", "/qualify", "/dashboard/assets/{name}", "/v1/dashboard/access"}
# Swagger UI's packaged script, style sheet and icon for /docs: no data (service/docs.py)
PUBLIC |= {"/docs/assets/{name}"}
ADMIN = {"/v1/admin/reload", "/v1/leads/{lead_id}"}  # the second: DELETE, erasing a lead
WRONG_KEY = "wrong-key-that-must-not-echo-4411"
BODIES: dict[str, Any] = {
    "/v1/leads/score": {},
    "/v1/leads/score/batch": {"leads": []},
    "/v1/leads/{lead_id}/outcome": {"converted": True},
}


def _flat_routes(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Routes of included routers too (FastAPI wraps each include; these routers add no prefix)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        yield from _flat_routes(included.routes) if included is not None else [route]


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, documented or not: a new route is covered the day it appears."""
    found = []
    for route in _flat_routes(client.app.routes):
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                found.append((method, route.path))
    return found


def _call(client: TestClient, method: str, path: str, key: str | None) -> httpx.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    body = BODIES.get(path)
    return client.request(method, path.replace("{lead_id}", "L-1"), headers=headers, json=body)


def _refusal(path: str, key: str | None) -> int | None:
    """The status this key must get on this route, or None where the key must be let through."""
    if path in PUBLIC:
        return None
    if key not in (SCORING_KEY, ADMIN_KEY):
        return 401
    if path in ADMIN and key == SCORING_KEY:
        return 403
    return None


KEYS = [pytest.param(None, id="no-key"), pytest.param("", id="empty-key"), pytest.param(WRONG_KEY, id="wrong-key")]
KEYS += [pytest.param(SCORING_KEY, id="scoring-key"), pytest.param(ADMIN_KEY, id="admin-key")]


@pytest.mark.parametrize("key", KEYS)
def test_every_route_answers_each_key_as_it_should(client: TestClient, key: str | None) -> None:
    client.headers.pop("X-API-Key", None)  # the fixture's client sends the scoring key by default
    routes = _routes(client)
    assert {path for _, path in routes} >= PUBLIC - {"/redoc"} | ADMIN | set(BODIES)
    wrong = []
    for method, path in routes:
        status = _call(client, method, path, key).status_code
        refusal = _refusal(path, key)
        if (refusal is not None and status != refusal) or (refusal is None and status in (401, 403)):
            wrong.append(f"{method} {path}: {status}, expected {refusal or 'neither 401 nor 403'}")
    assert not wrong, wrong


@pytest.mark.parametrize("key", [None, WRONG_KEY, SCORING_KEY])
def test_refusals_never_echo_a_key(client: TestClient, key: str | None) -> None:
    client.headers.pop("X-API-Key", None)
    for method, path in _routes(client):
        reply = _call(client, method, path, key)
        if reply.status_code in (401, 403):
            assert not [s for s in (SCORING_KEY, ADMIN_KEY, WRONG_KEY) if s in reply.text], (method, path)


def test_every_documented_operation_declares_its_key(client: TestClient) -> None:
    """Callers read the OpenAPI to know a key is needed: every keyed operation says so."""
    paths = client.get("/openapi.json").json()["paths"]
    undeclared = [
        (method.upper(), path)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if path not in PUBLIC and not operation.get("security")
    ]
    assert not undeclared


# ---- a real server: logs, limits, personal data ------------------------------------------------------------

PLANTED = {
    "email": "planted.secret.pii.9931@example.com",
    "full_name": "Plantedfirst Plantedlast",
    "phone": "+1-555-0199-7731",
}
MAX_BODY = 8_192
MAX_BATCH = 20


def _planted_leads(n: int, seed: int) -> list[dict]:
    """Generated leads carrying the planted personal data."""
    return [lead | PLANTED for lead in lead_records(n, seed)]


@pytest.fixture()
def server(start_server: ServerFactory, models_folder: ModelsFolder) -> Iterator[Server]:
    limits = {"LEADSCORE_MAX_BODY_BYTES": str(MAX_BODY), "LEADSCORE_MAX_BATCH": str(MAX_BATCH)}
    yield start_server(models_folder.champion, env=limits)


def _every_path_a_lead_can_take(server: Server) -> list[httpx.Response]:
    """Score, batch (with a bad row), refuse, report an outcome, read back: personal data planted in each."""
    leads = _planted_leads(6, seed=71)
    bad_row = leads[2] | {"pages_viewed": "many"}
    with server.client() as client, server.client(SERVER_ADMIN_KEY) as admin:
        replies = [
            client.post("/v1/leads/score?reasons=all", json=leads[0]),
            client.post("/v1/leads/score/batch?reasons=all", json={"leads": [leads[1], bad_row, leads[3]]}),
            client.post("/v1/leads/score", json=leads[4] | {"owns_home": "perhaps"}),
            client.post("/v1/leads/score", json=leads[5] | {"unknown_field": PLANTED["email"]}),
            client.post(f"/v1/leads/{leads[0]['lead_id']}/outcome", json={"converted": True, **PLANTED}),
            client.post(f"/v1/leads/{leads[0]['lead_id']}/outcome", json={"converted": True}),
        ]
        wait_for_score_log(server.url)
        replies += [
            client.get(f"/v1/leads/{leads[0]['lead_id']}/scores"),
            client.get("/v1/monitoring"),
            client.get("/v1/model"),
            admin.post("/v1/admin/reload"),
            client.get("/metrics"),
        ]
    return replies


def test_personal_data_never_reaches_the_database_the_logs_or_a_reply(server: Server, tmp_path: Path) -> None:
    replies = _every_path_a_lead_can_take(server)
    assert [r.status_code for r in replies[:6]] == [200, 200, 422, 422, 422, 200], [r.text for r in replies[:6]]
    assert replies[1].json()["scored"] == 2 and replies[1].json()["failed"] == 1
    server.terminate()
    database = b"".join(path.read_bytes() for path in sorted(tmp_path.glob("scores.db*")))
    log = server.log_text()
    assert b"owns_home" in database  # the model's fields are there, so the search below searched the right bytes
    for value in PLANTED.values():
        assert value.encode() not in database, f"{value!r} in the score database"
        assert value not in log, f"{value!r} in the server log"
        leaking = [r.request.url.path for r in replies if value in r.text]
        assert not leaking, f"{value!r} echoed by {leaking}"


def test_keys_never_reach_the_logs_or_an_error_body(server: Server) -> None:
    secrets = (SERVER_SCORING_KEY, SERVER_ADMIN_KEY, WRONG_KEY)
    near_misses = [SERVER_SCORING_KEY + "x", SERVER_SCORING_KEY[:-1], SERVER_ADMIN_KEY.upper(), WRONG_KEY]
    replies = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for key in near_misses:
            replies.append(client.post("/v1/leads/score", json={}, headers={"X-API-Key": key}))
            replies.append(client.post("/v1/admin/reload", headers={"X-API-Key": key}))
        replies.append(client.post("/v1/admin/reload", headers={"X-API-Key": SERVER_SCORING_KEY}))
        key_as_data = {"lead_source": WRONG_KEY, "pages_viewed": SERVER_SCORING_KEY}
        replies.append(client.post("/v1/leads/score", json=key_as_data, headers={"X-API-Key": SERVER_SCORING_KEY}))
    assert [r.status_code for r in replies] == [401, 401] * len(near_misses) + [403, 422]
    server.terminate()
    log = server.log_text()
    for secret in secrets:
        assert secret not in log
        assert not [r.text for r in replies if secret in r.text]


def test_request_and_batch_limits_hold_on_a_real_server(server: Server) -> None:
    padded = _planted_leads(1, seed=72)[0] | {"full_name": "x" * 150, "email": "y" * 150}
    big_batch = json.dumps({"leads": [padded] * MAX_BATCH}).encode()
    assert len(big_batch) > MAX_BODY  # over the byte limit while within the batch limit
    json_body = {"content-type": "application/json"}
    with server.client() as client:
        statuses = {
            "body over the byte limit": client.post("/v1/leads/score/batch", content=big_batch, headers=json_body),
            "chunked body over the byte limit": client.post(
                "/v1/leads/score", content=_chunks(b'{"lead_source": "' + b"z" * MAX_BODY + b'"}'), headers=json_body
            ),
            "batch over the lead limit": client.post("/v1/leads/score/batch", json={"leads": [{}] * (MAX_BATCH + 1)}),
            "batch at the lead limit": client.post("/v1/leads/score/batch", json={"leads": [{}] * MAX_BATCH}),
            "4,000 nested arrays": client.post("/v1/leads/score", content=b"[" * 4_000, headers=json_body),
            "string over 200 characters": client.post("/v1/leads/score", json={"lead_source": "s" * 201}),
        }
        statuses = {name: reply.status_code for name, reply in statuses.items()}
        assert client.get("/readyz").status_code == 200
    assert statuses == {
        "body over the byte limit": 413,
        "chunked body over the byte limit": 413,
        "batch over the lead limit": 413,
        "batch at the lead limit": 200,
        "4,000 nested arrays": 422,
        "string over 200 characters": 422,
    }
    assert "Traceback" not in server.log_text()
    report(
        f"Security: limits on a real server (LEADSCORE_MAX_BODY_BYTES={MAX_BODY}, LEADSCORE_MAX_BATCH={MAX_BATCH})",
        ["request", "status"],
        [[name, str(status)] for name, status in statuses.items()],
    )


def _chunks(data: bytes, size: int = 1_024) -> Iterator[bytes]:
    """A body sent with chunked transfer encoding: no Content-Length for the server to check up front."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


# ---- bundles come only from the configured place -----------------------------------------------------------


class _Marker:
    """Unpickling this creates a directory: proof that a pickle was loaded (a bundle is code)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.path),)


def _planted_bundle(folder: Path, marker: Path) -> Path:
    """A bundle that would pass the checksum and version checks, and runs code if it is ever unpickled."""
    folder.mkdir(parents=True)
    payload = pickle.dumps(_Marker(marker))
    (folder / "bundle.joblib").write_bytes(payload)
    sidecar = {
        "format": FORMAT_VERSION,
        "version": "planted",
        "sha256": hashlib.sha256(payload).hexdigest(),
        "versions": library_versions(),
    }
    (folder / "bundle.json").write_text(json.dumps(sidecar))
    return folder


def test_no_request_can_choose_the_bundle(make_client: AppFactory, models_folder: ModelsFolder, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    planted = str(_planted_bundle(tmp_path / "planted", marker))
    client = make_client()
    admin = {"X-API-Key": ADMIN_KEY}
    attempts = [
        client.post("/v1/admin/reload", headers=admin, json={"model_dir": planted, "path": planted}),
        client.post("/v1/admin/reload", headers=admin, params={"model_dir": planted, "model_uri": planted}),
        client.post("/v1/admin/reload", headers=admin | {"X-Model-Dir": planted, "X-Model-Uri": planted}),
        client.post(f"/v1/admin/reload?path={planted}", headers=admin, content=planted.encode()),
    ]
    assert [reply.json()["model_version"] for reply in attempts] == [models_folder.first] * len(attempts)
    assert not marker.exists(), "a bundle named in a request was unpickled"
    card = client.get("/v1/model").json()
    assert card["source"] == str(models_folder.champion.resolve())
    reload_operation = client.get("/openapi.json").json()["paths"]["/v1/admin/reload"]["post"]
    assert not reload_operation.get("parameters") and "requestBody" not in reload_operation
    for route in _flat_routes(client.app.routes):
        if isinstance(route, APIRoute):
            names = {param.alias for param in route.dependant.query_params + route.dependant.header_params}
            assert not names & {"model_dir", "model_uri", "path", "bundle"}, (route.path, names)


def test_a_champion_link_out_of_the_models_folder_is_refused(
    make_client: AppFactory, models_folder: ModelsFolder, tmp_path: Path
) -> None:
    """Whoever can repoint the link must not be able to make the service unpickle a file from anywhere on disk."""
    marker = tmp_path / "unpickled"
    planted = _planted_bundle(tmp_path / "elsewhere" / "planted", marker)
    client = make_client()
    staging = models_folder.root / ".champion.next"
    staging.symlink_to(planted, target_is_directory=True)
    os.replace(staging, models_folder.champion)

    reply = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})

    assert reply.status_code == 409 and "outside the models folder" in reply.json()["reason"], reply.text
    assert reply.json()["model_version"] == models_folder.first
    assert not marker.exists()
    models_folder.point_champion_at(models_folder.second)
    assert client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY}).json()["model_version"] == (
        models_folder.second
    )


def test_a_setting_lets_the_champion_link_leave_the_models_folder(
    make_client: AppFactory, models_folder: ModelsFolder, tmp_path: Path
) -> None:
    outside = shutil.copytree(models_folder.root / models_folder.second, tmp_path / "elsewhere" / "second")
    models_folder.champion.unlink()
    models_folder.champion.symlink_to(outside, target_is_directory=True)

    assert make_client().get("/readyz").status_code == 503
    allowed = make_client(allow_model_outside_models_dir=True)
    assert allowed.get("/readyz").json()["model_version"] == models_folder.second


@pytest.mark.parametrize(
    ("host", "key", "warned"),
    [("0.0.0.0", None, True), ("10.0.0.5", "", True), ("0.0.0.0", "k", False), ("127.0.0.1", None, False)],
)
def test_serving_beyond_loopback_without_a_signing_key_warns(
    monkeypatch: pytest.MonkeyPatch, host: str, key: str | None, warned: bool
) -> None:
    from training.cli import unsigned_bundles_warning

    monkeypatch.delenv("LEADSCORE_BUNDLE_KEY", raising=False)
    if key is not None:
        monkeypatch.setenv("LEADSCORE_BUNDLE_KEY", key)
    warning = unsigned_bundles_warning(host)
    assert (warning is not None) == warned
    assert warning is None or "LEADSCORE_BUNDLE_KEY" in warning


@pytest.mark.parametrize("path", ["/v1/leads/score", "/v1/leads/score/batch", "/v1/leads/L-1/outcome"])
def test_a_wrong_key_is_refused_before_the_body_is_read(server: Server, path: str) -> None:
    """The request announces a body just within the limit and sends none of it: the 401 must come without
    waiting for the body."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {WRONG_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {MAX_BODY - 1}\r\n\r\n".encode()
        )
        head = sock.recv(4096)  # socket.timeout here means the server waited for the body
    assert head.startswith(b"HTTP/1.1 401"), head[:100]
    assert WRONG_KEY.encode() not in head
