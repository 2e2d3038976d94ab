"""Schema-driven fuzzing of a running service: schemathesis generates requests from the service's own OpenAPI.

Every operation gets valid and invalid requests (schemathesis' positive and negative modes) with a valid key,
and every response is checked against what the schema documents: no 5xx, a documented status code, the
documented content type, headers and body schema, invalid data refused, valid data accepted, and the key
actually enforced. Generation is seeded, so a run is repeatable; nothing is shrunk, so the request count is exact.
`make test` runs a few hundred requests (tests/reliability/test_fuzz.py), `bench/fuzz.py` thousands.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from schemathesis import CheckContext, GenerationMode, Response
from schemathesis import checks as core_checks
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi import checks as openapi_checks

MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
ADMIN_PREFIX = "/v1/admin/"
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
        ]


HEADER = ["operation", "valid", "invalid", "2xx", "4xx", "5xx", "failed checks"]
SUMMARY_HEADER = [
    "requests",
    "operations",
    "seconds",
    "5xx",
    "undocumented responses",
    "invalid accepted",
    "valid rejected",
    "key not enforced",
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


def key_for(path: str, scoring_key: str, admin_key: str) -> str:
    """A valid key for the route: admin routes need the admin key, the rest take the scoring key."""
    return admin_key if path.startswith(ADMIN_PREFIX) else scoring_key


def run_fuzz(
    base_url: str,
    scoring_key: str,
    admin_key: str,
    examples_per_operation: int,
    seed: int = 0,
    timeout_s: float = 30,
) -> FuzzReport:
    """Send seeded generated requests to every operation in both modes; collect statuses and check failures."""
    schema = load_schema(base_url)
    report = FuzzReport(seed=seed)
    started = time.perf_counter()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            fuzz = _Fuzzer(operation, session, key_for(operation.path, scoring_key, admin_key), timeout_s, report)
            for mode in MODES:
                fuzz.run(mode, examples_per_operation, seed)
    report.seconds = time.perf_counter() - started
    return report


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
