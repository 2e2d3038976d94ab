"""Schema-driven fuzzing of a running service: schemathesis generates requests from the service's own OpenAPI.

Every operation gets valid and invalid requests (schemathesis' positive and negative modes) with a valid key,
and every response is checked against what the schema documents: no 5xx, a documented status code, the
documented content type, headers and body schema, invalid data refused, valid data accepted, and the key
actually enforced. The operations that take a lead or a lead id also get hostile requests (``tests.reliability.
hostile``: 64-bit edges, NUL, invalid UTF-8, the calendar's edges, duplicate keys), which must get no 5xx, and
each hostile lead must get the same answer from the single-lead and the batch route. Generation is seeded, so a
run is repeatable; nothing is shrunk, so the request count is exact. `make test` runs a few hundred requests
(tests/reliability/test_fuzz.py), `bench/fuzz.py` thousands.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.strategies as st
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from schemathesis import CheckContext, GenerationMode, Response
from schemathesis import checks as core_checks
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi import checks as openapi_checks

from tests.reliability import hostile

MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
HOSTILE = "hostile"
ADMIN_PREFIX = "/v1/admin/"
ADMIN_OPERATIONS = frozenset({"DELETE /v1/leads/{lead_id}"})  # admin routes outside ADMIN_PREFIX
BATCH_PATH = "/v1/leads/score/batch"
# The promises, by the failure classes schemathesis raises when one is broken.
SERVER_ERRORS = frozenset({"ServerError", "MalformedJson"})
UNDOCUMENTED = frozenset(
    {
        "UndefinedStatusCode",
        "UndefinedContentType",
        "MissingContentType",
        "MalformedMediaType",
        "JsonSchemaError",
        "MissingHeaders",
        "ContentDeserializationError",
        "CustomFailure",  # response_headers_conformance reports header schema violations this way
    }
)
INVALID_ACCEPTED = frozenset({"AcceptedNegativeData"})
VALID_REJECTED = frozenset({"RejectedPositiveData"})
AUTH_IGNORED = frozenset({"IgnoredAuth"})
ROUTES_DISAGREE = frozenset({"RoutesDisagree"})


@dataclass(frozen=True)
class Finding:
    """One response that broke a check, with what is needed to reproduce it."""

    operation: str
    mode: str
    status: int
    kinds: frozenset[str]  # failure class names
    message: str
    curl: str

    def describe(self) -> str:
        return f"{self.operation} [{self.mode}] -> {self.status}: {self.message}\n    {self.curl}"


@dataclass
class OperationTally:
    """Requests sent to one operation, by generation mode and response status."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    findings: int = 0


@dataclass
class FuzzReport:
    """The figures of one fuzzing run."""

    seed: int
    seconds: float = 0.0
    operations: dict[str, OperationTally] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    score_log_refused: int = 0  # scores the score log failed or rejected during the run: accepted yet unstorable

    @property
    def requests(self) -> int:
        """Generated requests sent (probes that checks send on their own are not counted)."""
        return sum(sum(tally.requests.values()) for tally in self.operations.values())

    @property
    def server_errors(self) -> int:
        return sum(n for tally in self.operations.values() for status, n in tally.statuses.items() if status >= 500)

    def broken(self, kinds: frozenset[str]) -> list[Finding]:
        """The findings that broke one promise."""
        return [finding for finding in self.findings if finding.kinds & kinds]

    def rows(self) -> list[list[str]]:
        """One table row per operation: requests per mode, 2xx/4xx/5xx counts and failed checks."""
        rows = []
        for label, tally in sorted(self.operations.items()):
            by_class = Counter(f"{status // 100}xx" for status in tally.statuses.elements())
            rows.append(
                [
                    label,
                    str(tally.requests[GenerationMode.POSITIVE.value]),
                    str(tally.requests[GenerationMode.NEGATIVE.value]),
                    str(tally.requests[HOSTILE]),
                    str(by_class["2xx"]),
                    str(by_class["4xx"]),
                    str(by_class["5xx"]),
                    str(tally.findings),
                ]
            )
        return rows

    def summary(self) -> list[str]:
        """The run in one row: requests, time, 5xx, and failures per promise."""
        return [
            f"{self.requests:,}",
            str(len(self.operations)),
            f"{self.seconds:.1f}",
            str(self.server_errors),
            str(len(self.broken(UNDOCUMENTED))),
            str(len(self.broken(INVALID_ACCEPTED))),
            str(len(self.broken(VALID_REJECTED))),
            str(len(self.broken(AUTH_IGNORED))),
            str(len(self.broken(ROUTES_DISAGREE))),
            str(self.score_log_refused),
        ]


HEADER = ["operation", "valid", "invalid", "hostile", "2xx", "4xx", "5xx", "failed checks"]
SUMMARY_HEADER = [
    "requests",
    "operations",
    "seconds",
    "5xx",
    "undocumented responses",
    "invalid accepted",
    "valid rejected",
    "key not enforced",
    "routes disagree",
    "scores not stored",
]


def load_schema(base_url: str) -> schemathesis.BaseSchema:
    """The service's own OpenAPI, as it serves it (with the loaded model's lead fields).

    Unknown query parameters and headers are ignored by design (callers add tracking parameters), so
    invalid requests are made by breaking the documented parts, not by adding undocumented ones.
    """
    config = schemathesis.Config.from_dict({"generation": {"allow-extra-parameters": False}})
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config, wait_for_schema=30)


def invalid_data_refused(ctx: CheckContext, response: Response, case: schemathesis.Case) -> bool | None:
    """Invalid requests get a 4xx; in a batch, invalid leads may instead be refused row by row.

    Partial success is the batch contract: a 200 is right when the invalid leads come back in `errors`.
    """
    try:
        return openapi_checks.negative_data_rejection(ctx, response, case)
    except Failure:
        if not (case.operation.path == BATCH_PATH and response.status_code == 200 and _rows_refused(response)):
            raise
    return True


def _rows_refused(response: Response) -> bool:
    """Whether a batch reply reports at least one refused lead."""
    try:
        return int(response.json().get("failed", 0)) > 0
    except (ValueError, AttributeError):
        return False


# What "every response matches its documented schema" means, check by check.
CHECKS = (
    core_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    invalid_data_refused,
    openapi_checks.positive_data_acceptance,
    openapi_checks.ignored_auth,
)


def key_for(method: str, path: str, scoring_key: str, admin_key: str) -> str:
    """A valid key for the operation: admin routes need the admin key, the rest take the scoring key."""
    admin = path.startswith(ADMIN_PREFIX) or f"{method.upper()} {path}" in ADMIN_OPERATIONS
    return admin_key if admin else scoring_key


def run_fuzz(
    base_url: str,
    scoring_key: str,
    admin_key: str,
    examples_per_operation: int,
    seed: int = 0,
    timeout_s: float = 30,
    hostile_examples: int | None = None,
) -> FuzzReport:
    """Send seeded generated requests to every operation in both modes, then the hostile ones (as many cases per
    operation as ``hostile_examples``, by default ``examples_per_operation``); collect statuses and failures."""
    schema = load_schema(base_url)
    report = FuzzReport(seed=seed)
    started = time.perf_counter()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            fuzz = _Fuzzer(
                operation, session, key_for(operation.method, operation.path, scoring_key, admin_key), timeout_s, report
            )
            for mode in MODES:
                fuzz.run(mode, examples_per_operation, seed)
        hostile_fuzz = _Hostile(base_url, session, scoring_key, timeout_s, report, _lead_fields(schema))
        hostile_fuzz.run(hostile_examples or examples_per_operation, seed)
    report.score_log_refused = _score_log_refused(base_url, scoring_key, timeout_s)
    report.seconds = time.perf_counter() - started
    return report


def _lead_fields(schema: schemathesis.BaseSchema) -> dict[str, dict[str, Any]]:
    """The lead's JSON names and their schemas, from the OpenAPI the service serves."""
    return schema.raw_schema["components"]["schemas"]["Lead"].get("properties", {})


def _score_log_refused(base_url: str, key: str, timeout_s: float) -> int:
    """Scores the server accepted but its score log failed to store (after waiting for the writer to drain)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = requests.get(f"{base_url}/metrics", headers={"X-API-Key": key}, timeout=timeout_s).text
        figures = {
            name: float(value) for name, value in re.findall(r"^leadscore_score_log_(\w+) ([0-9.e+]+)$", text, re.M)
        }
        if figures.get("queue_depth", 0) == 0 or time.monotonic() > deadline:
            return int(figures.get("failed", 0) + figures.get("rejected", 0))
        time.sleep(0.1)


class _Fuzzer:
    """Generated requests for one operation: sent, tallied and checked."""

    def __init__(
        self,
        operation: schemathesis.APIOperation,
        session: requests.Session,
        key: str,
        timeout_s: float,
        report: FuzzReport,
    ) -> None:
        self.operation = operation
        self.session = session
        self.headers = {"X-API-Key": key}
        self.timeout_s = timeout_s
        self.report = report
        self.tally = report.operations.setdefault(operation.label, OperationTally())

    def run(self, mode: GenerationMode, examples: int, seed: int) -> None:
        """Run `examples` cases through Hypothesis; failures are recorded, never raised, so every case runs."""

        @hypothesis.settings(
            max_examples=examples,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: every generated case is one counted request
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.seed(seed)
        @hypothesis.given(case=self.operation.as_strategy(generation_mode=mode))
        def exercise(case: schemathesis.Case) -> None:
            self.exercise(case, mode)

        with contextlib.suppress(Unsatisfiable):  # nothing to negate (no parameters, no body): no invalid requests
            exercise()

    def exercise(self, case: schemathesis.Case, mode: GenerationMode) -> None:
        response = case.call(session=self.session, headers=self.headers, timeout=self.timeout_s)
        self.tally.requests[mode.value] += 1
        self.tally.statuses[response.status_code] += 1
        try:
            case.validate_response(
                response, checks=list(CHECKS), headers=self.headers, transport_kwargs={"session": self.session}
            )
        except FailureGroup as group:
            self.record(case, mode, response.status_code, list(group.exceptions))
        except Failure as failure:
            self.record(case, mode, response.status_code, [failure])

    def record(self, case: schemathesis.Case, mode: GenerationMode, status: int, failures: list[Failure]) -> None:
        """Keep a failed case with its failure kinds, message and a curl command that reproduces it."""
        self.tally.findings += 1
        self.report.findings.append(
            Finding(
                operation=case.operation.label,
                mode=mode.value,
                status=status,
                kinds=frozenset(type(f).__name__ for f in failures),
                message="; ".join(f"{f.title}: {_first_line(f.message)}" for f in failures),
                curl=case.as_curl_command(headers=self.headers),
            )
        )


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


@dataclass(frozen=True)
class _Reply:
    status: int
    text: str


class _Hostile:
    """Hostile requests (``tests.reliability.hostile``) to the operations that take a lead or a lead id."""

    SCORE_ONE = "POST /v1/leads/score"
    SCORE_BATCH = "POST /v1/leads/score/batch"
    OUTCOME = "POST /v1/leads/{lead_id}/outcome"
    SCORES = "GET /v1/leads/{lead_id}/scores"

    def __init__(
        self,
        base_url: str,
        session: requests.Session,
        key: str,
        timeout_s: float,
        report: FuzzReport,
        fields: dict[str, dict[str, Any]],
    ) -> None:
        self.base_url = base_url
        self.session = session
        self.headers = {"X-API-Key": key, "Content-Type": "application/json"}
        self.timeout_s = timeout_s
        self.report = report
        self.fields = fields

    def run(self, examples: int, seed: int) -> None:
        """Each strategy through Hypothesis, seeded; every case is sent, none shrunk."""
        options = st.tuples(st.booleans(), st.sampled_from(["all", "false"]))  # ASCII-only JSON; reasons
        self._explore(self.lead, hostile.hostile_leads(self.fields), options, examples, seed)
        leads = st.lists(hostile.hostile_leads(self.fields), min_size=1, max_size=5)
        self._explore(self.batch, leads, st.booleans(), examples, seed)
        self._explore(self.outcome, hostile.hostile_ids(), hostile.outcome_bodies(), examples, seed)

    @staticmethod
    def _explore(
        send: Callable[[Any, Any], None], first: st.SearchStrategy, second: st.SearchStrategy, examples: int, seed: int
    ) -> None:
        """Call ``send`` with ``examples`` seeded draws of the two strategies."""

        @hypothesis.settings(
            max_examples=examples,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.seed(seed)
        @hypothesis.given(first, second)
        def exercise(a: Any, b: Any) -> None:
            send(a, b)

        exercise()

    def lead(self, lead: hostile.Pairs, options: tuple[bool, str]) -> None:
        """One lead to both scoring routes: no 5xx, and the same verdict from each."""
        ascii_only, reasons = options
        body = hostile.encode(lead, ascii_only)
        one = self.send(self.SCORE_ONE, "POST", f"/v1/leads/score?reasons={reasons}", body)
        batch_path = f"/v1/leads/score/batch?reasons={reasons}"
        batch = self.send(self.SCORE_BATCH, "POST", batch_path, b'{"leads":[' + body + b"]}")
        one_accepts = one.status == 200
        batch_accepts = batch.status == 200 and '"scored":1,' in batch.text
        if one.status < 500 and batch.status < 500 and one_accepts != batch_accepts:
            self.find(
                self.SCORE_ONE,
                one.status,
                "RoutesDisagree",
                f"single-lead route {one.status}, batch route {batch.status} {batch.text[:200]}",
                body,
            )

    def batch(self, leads: list[hostile.Pairs], ascii_only: bool) -> None:
        self.send(self.SCORE_BATCH, "POST", "/v1/leads/score/batch", hostile.encode({"leads": leads}, ascii_only))

    def outcome(self, lead_id: str, report: hostile.Pairs) -> None:
        self.send(self.OUTCOME, "POST", f"/v1/leads/{lead_id}/outcome", hostile.encode(report))
        self.send(self.SCORES, "GET", f"/v1/leads/{lead_id}/scores", None)

    def send(self, operation: str, method: str, path: str, body: bytes | None) -> _Reply:
        """Send as is, tally, and record a 5xx with what reproduces it; a dropped connection counts as a 500
        (what the server's own error handling does when a request fails past the point of replying)."""
        try:
            response = self.session.request(
                method, f"{self.base_url}{path}", data=body, headers=self.headers, timeout=self.timeout_s
            )
            reply = _Reply(response.status_code, response.text)
        except requests.ConnectionError as exc:
            reply = _Reply(500, f"connection dropped: {exc}")
        tally = self.report.operations.setdefault(operation, OperationTally())
        tally.requests[HOSTILE] += 1
        tally.statuses[reply.status] += 1
        if reply.status >= 500:
            self.find(operation, reply.status, "ServerError", reply.text[:200], body, path)
        return reply

    def find(self, operation: str, status: int, kind: str, message: str, body: bytes | None, path: str = "") -> None:
        tally = self.report.operations.setdefault(operation, OperationTally())
        tally.findings += 1
        curl = f"curl -X {operation.split()[0]} '{self.base_url}{path}' --data-binary {body!r}"
        self.report.findings.append(Finding(operation, HOSTILE, status, frozenset({kind}), message, curl))
