"""Client errors shared by the FastAPI routes and the scoring lane, so both answer in one shape."""

from __future__ import annotations

from typing import Any

# What both databases can store, and what the request path therefore accepts (see service.schemas):
# integers within 64 bits, and text without the NUL character, which PostgreSQL's text columns refuse.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NUL_FREE = r"^[^\x00]*$"
NUL_MESSAGE = "must not contain the NUL character (\\u0000): it cannot be stored"


class LeadRejected(Exception):
    """A lead that fails the model's schema: 422 naming each field and problem."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors


def validation_problems(errors: list[dict[str, Any]], drop: int = 0) -> list[dict[str, Any]]:
    """FastAPI's 422 shape, plus the field name; never echoing the input (it may be personal data)."""
    problems = []
    for error in errors:
        loc = list(error.get("loc", ()))
        field = str(loc[drop]) if len(loc) > drop else None
        kind = error.get("type", "invalid")
        problems.append({"loc": loc, "msg": problem_message(error), "type": kind, "field": field})
    return problems


def problem_message(error: dict[str, Any]) -> str:
    """The validator's message, or a plain one where the validator would show its NUL-refusing pattern."""
    if error.get("type") == "string_pattern_mismatch" and (error.get("ctx") or {}).get("pattern") == NUL_FREE:
        return NUL_MESSAGE
    return error.get("msg", "invalid")
