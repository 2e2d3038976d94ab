"""Fuzzing the real service from its own OpenAPI: a few hundred seeded requests here, thousands in bench/fuzz.py.

One run (every operation, valid, invalid and hostile requests, valid keys) feeds several tests, one per promise,
so a failure names the promise that broke and lists the requests that broke it, each with a curl command. The
whole module runs twice: over a SQLite score log and over a PostgreSQL one, whose text columns refuse more.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import jsonschema_rs
import pytest

from tests.conftest import Trained
from tests.e2e.server import ADMIN_KEY, SCORING_KEY, Server
from tests.reliability import fuzzing
from tests.reliability.conftest import suite_server
from tests.reliability.figures import report

EXAMPLES_PER_OPERATION = 12  # per mode: about 250 requests over the service's 11 operations
HOSTILE_EXAMPLES = 40  # per hostile strategy: 200 requests to the operations that take a lead or a lead id
HOSTILE_OPERATIONS = {
    "POST /v1/leads/score",
    "POST /v1/leads/score/batch",
    "POST /v1/leads/{lead_id}/outcome",
    "GET /v1/leads/{lead_id}/scores",
}
SEED = 20261123
MIN_REQUESTS = 200


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, trained: Trained
) -> Iterator[Server]:
    database_url = None
    if request.param == "postgresql":
        database_url = request.getfixturevalue("pg_server").create_database(f"fuzz_{uuid.uuid4().hex[:12]}")
    with suite_server(tmp_path_factory, trained, f"fuzz-{request.param}", database_url) as server:
        yield server


@pytest.fixture(scope="module")
def fuzz_report(server: Server) -> fuzzing.FuzzReport:
    """One seeded run over every operation, reported as a table."""
    result = fuzzing.run_fuzz(
        server.url, SCORING_KEY, ADMIN_KEY, EXAMPLES_PER_OPERATION, seed=SEED, hostile_examples=HOSTILE_EXAMPLES
    )
    database = server.database_url.split(":")[0]
    report(f"Fuzzing, seed {SEED}, {database} score log", fuzzing.SUMMARY_HEADER, [result.summary()])
    report(f"Fuzzing by operation, {database} score log", fuzzing.HEADER, result.rows())
    return result


def _listed(findings: list[fuzzing.Finding], limit: int = 20) -> str:
    """Failed cases, one per line with a curl command that reproduces it."""
    return f"{len(findings)} requests:\n" + "\n".join(f.describe() for f in findings[:limit])


def test_every_operation_gets_valid_and_invalid_requests(fuzz_report: fuzzing.FuzzReport, server: Server) -> None:
    documented = set(httpx.get(f"{server.url}/openapi.json").json()["paths"])
    fuzzed = {label.split(" ", 1)[1] for label in fuzz_report.operations}
    assert fuzzed == documented
    assert fuzz_report.requests >= MIN_REQUESTS
    with_inputs = [tally for label, tally in fuzz_report.operations.items() if "/v1/leads" in label]
    assert all(tally.requests["positive"] and tally.requests["negative"] for tally in with_inputs)
    hostile = {label for label, tally in fuzz_report.operations.items() if tally.requests[fuzzing.HOSTILE]}
    assert hostile == HOSTILE_OPERATIONS


def test_no_request_gets_a_server_error(fuzz_report: fuzzing.FuzzReport, server: Server) -> None:
    assert fuzz_report.server_errors == 0, _listed(fuzz_report.broken(fuzzing.SERVER_ERRORS))
    assert "Traceback" not in server.log_text()


def test_both_scoring_routes_accept_exactly_the_same_leads(fuzz_report: fuzzing.FuzzReport) -> None:
    disagree = fuzz_report.broken(fuzzing.ROUTES_DISAGREE)
    assert not disagree, _listed(disagree)


def test_every_accepted_score_is_stored(fuzz_report: fuzzing.FuzzReport) -> None:
    """Whatever the request path accepted, the score log could store: none failed, none rejected."""
    assert fuzz_report.score_log_refused == 0


def test_every_response_is_documented(fuzz_report: fuzzing.FuzzReport) -> None:
    """Status code, content type, headers and body all as the OpenAPI says."""
    broken = fuzz_report.broken(fuzzing.UNDOCUMENTED)
    assert not broken, _listed(broken)


def test_invalid_requests_are_refused(fuzz_report: fuzzing.FuzzReport) -> None:
    accepted = fuzz_report.broken(fuzzing.INVALID_ACCEPTED)
    assert not accepted, _listed(accepted)


def test_valid_requests_are_accepted(fuzz_report: fuzzing.FuzzReport) -> None:
    rejected = fuzz_report.broken(fuzzing.VALID_REJECTED)
    assert not rejected, _listed(rejected)


def test_keys_are_enforced_on_every_operation_that_declares_them(fuzz_report: fuzzing.FuzzReport) -> None:
    ignored = fuzz_report.broken(fuzzing.AUTH_IGNORED)
    assert not ignored, _listed(ignored)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/leads/score", {"pages_viewed": True}),
        ("/v1/leads/score", {"owns_home": 1.5}),
        ("/v1/leads/score/batch", {"leads": [{"pages_viewed": False}]}),
        ("/v1/leads/L-1/outcome", {"converted": True, "value": False}),
        ("/v1/leads/L-1/outcome", {"converted": True, "occurred_at": "1"}),
    ],
    ids=["boolean-as-number", "fraction-as-boolean", "batch-boolean-as-number", "boolean-value", "digit-as-date"],
)
def test_values_of_the_wrong_json_type_are_refused_not_coerced(server: Server, path: str, body: dict) -> None:
    """What the generated requests hit now and then, pinned: a wrong JSON type must be a 422, not a guess."""
    with server.client() as client:
        reply = client.post(path, json=body)
    if path.endswith("/batch") and reply.status_code == 200:
        assert reply.json()["failed"] == 1, reply.text
    else:
        assert reply.status_code == 422, reply.text


@pytest.mark.parametrize(
    "lead",
    [
        {"email": {"name": "x"}},
        {"phone": []},
        {"account_manager_assigned": {}},
        {"pages_viewed": "lots"},
        {"full_name": 1},
    ],
    ids=["object-pii", "list-pii", "object-excluded", "text-as-number", "number-as-pii-text"],
)
def test_the_documented_lead_schema_accepts_what_the_service_accepts(server: Server, lead: dict) -> None:
    """The Lead in /openapi.json is the contract callers generate clients from: it must agree with the service."""
    document = httpx.get(f"{server.url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    documented = jsonschema_rs.Draft202012Validator({**schemas["Lead"], "components": {"schemas": schemas}})
    with server.client() as client:
        accepted = client.post("/v1/leads/score?reasons=false", json=lead).status_code == 200
    assert documented.is_valid(lead) == accepted, f"OpenAPI says valid={documented.is_valid(lead)}, service {accepted}"
