"""Client errors shared by the FastAPI routes and the scoring lane, so both answer in one shape."""

from __future__ import annotations

from typing import Any


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
        problems.append(
            {"loc": loc, "msg": error.get("msg", "invalid"), "type": error.get("type", "invalid"), "field": field}
        )
    return problems
