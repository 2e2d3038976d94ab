"""Request and response models; the lead model is built from the loaded bundle's input schema."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    create_model,
)
from typing_extensions import TypedDict

from service.errors import INT64_MAX, INT64_MIN, NUL_FREE
from training.bundle import Bundle
from training.placeholders import placeholder_pattern
from training.schema import FieldSchema


class Reason(BaseModel):
    field: str
    value: Any = None
    contribution: float = Field(description="Signed contribution to the calibrated log-odds of converting.")


class LeadScore(BaseModel):
    lead_id: str | None = None
    probability: float = Field(description="Calibrated probability that the lead converts.")
    grade: str
    percentile: float = Field(description="Share of holdout leads scoring lower, 0-100.")
    reasons: list[Reason] | None = Field(
        default=None, description="Top positive and negative contributions; with the base value they add up exactly."
    )
    base_value: float | None = None
    warnings: list[str] = []
    model_version: str
    scored_at: datetime


class Answer(BaseModel):
    value: Any = Field(description="The answer as a lead would send it; a number's bin is scored at its median.")
    label: str = Field(description="The answer in a rep's words; a number's bin as its range.")
    share: float = Field(description="The chance of this answer, from the training leads, given what is known.")
    probability: float = Field(description="The lead's calibrated probability with this answer.")
    grade: str


class NextQuestion(BaseModel):
    field: str
    question: str = Field(description="What to ask, in a rep's words.")
    value_of_asking: float = Field(
        description="Expected absolute change in probability: the sum over answers of share × |change|."
    )
    entropy_reduction: float = Field(
        description="Expected fall in the binary entropy of the probability (bits); negative when answers are "
        "expected to leave the lead less certain than its probability now."
    )
    answers: list[Answer]


class NextQuestions(BaseModel):
    lead_id: str | None = None
    probability: float = Field(description="Calibrated probability from what is known (other fields missing).")
    grade: str
    questions: list[NextQuestion] = Field(description="The unanswered askable fields, most worth asking first.")
    model_version: str


class RowError(BaseModel):
    index: int
    lead_id: str | None = None
    errors: list[dict[str, Any]]


class BatchScores(BaseModel):
    model_version: str
    scored: int
    failed: int
    results: list[LeadScore]
    errors: list[RowError]


def _iso_datetime(value: Any) -> Any:
    """Only ISO 8601 text: pydantic would otherwise read "1" or 1 as seconds since 1970."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string, such as 2026-11-23T09:30:00Z")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time string, such as 2026-11-23T09:30:00Z") from None
    if moment.tzinfo is not None:
        try:
            moment.astimezone(UTC)  # stored in UTC: 9999-12-31T23:59:59-14:00 is past the calendar's end there
        except OverflowError:
            raise ValueError("must fall between 0001-01-01 and 9999-12-31 once converted to UTC") from None
    return moment


class OutcomeIn(BaseModel):
    """Strict JSON types: a CRM that sends "yes" or false where a boolean or number belongs gets a 422."""

    model_config = ConfigDict(extra="forbid")

    converted: StrictBool
    value: Annotated[float | None, Field(strict=True, allow_inf_nan=False, ge=0)] = None
    occurred_at: Annotated[datetime | None, BeforeValidator(_iso_datetime)] = Field(
        default=None, json_schema_extra={"format": "date-time"}
    )


class OutcomeOut(BaseModel):
    lead_id: str
    converted: bool
    value: float | None
    occurred_at: datetime | None
    reported_at: datetime
    revision: int


# Only what both score-log databases can store: text without NUL, integers within 64 bits (see service.errors).
StorableInt = Annotated[int, Strict(), Field(ge=INT64_MIN, le=INT64_MAX)]
# JSON Schema counts 33.0 as an integer, so clients generated from /openapi.json may send one; a category reads
# it as 33. The bounds keep out the floats that integers beyond 64 bits become (the widest below 2**63 is
# 2**63 - 1024), so those are refused as the integers they were.
WholeNumber = Annotated[
    float, Field(strict=True, allow_inf_nan=False, multiple_of=1, ge=INT64_MIN + 1024, le=INT64_MAX - 1023)
]


def storable_text(max_length: int) -> Any:
    """Text of at most ``max_length`` characters that PostgreSQL and SQLite both store as it is (no NUL)."""
    return Annotated[str, StringConstraints(max_length=max_length, pattern=NUL_FREE)]


def _text(max_length: int) -> Any:
    """A category or id: text, or a JSON integer (codes such as 33 arrive either way); the scorer reads both.

    Built only from pydantic-core's own types: a Python validator per field would double validation time.
    """
    return storable_text(max_length) | StorableInt | WholeNumber


def _scalar(max_length: int) -> Any:
    """Any JSON scalar, for fields accepted and ignored; objects, arrays and overlong strings are refused.

    Held to the same rules as stored fields, so that whether a lead is accepted never depends on which of its
    fields the model happens to use."""
    return storable_text(max_length) | StorableInt | float | bool | None


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# What a boolean field accepts, documented as validated: true/false, 0 or 1, and the words pydantic reads as
# booleans in any case (CRMs send "yes" and 1); anything else is a 422 naming the field.
_BOOLEAN_WORDS = ("true", "false", "yes", "no", "on", "off", "t", "f", "y", "n", "1", "0")
ACCEPTED_BOOLEAN = Annotated[
    bool,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "boolean"},
                {"enum": [0, 1]},
                {"type": "string", "pattern": f"^(?:{'|'.join(map(_any_case, _BOOLEAN_WORDS))})$"},
            ]
        }
    ),
]


def _field_type(field: FieldSchema, max_length: int, placeholders: list[str]) -> Any:
    """JSON types per field kind; wrong types, NaN/inf and overlong strings fail validation by name.

    A number or boolean may also be one of the field's declared placeholders (`"n/a"`), scored as missing.
    """
    if field.kind == "numeric":
        number = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # true is not a number
        return number | _placeholder(placeholders) | None if placeholders else number | None
    if field.kind == "boolean":
        return ACCEPTED_BOOLEAN | _placeholder(placeholders) | None if placeholders else ACCEPTED_BOOLEAN | None
    return _text(max_length) | None


def _placeholder(placeholders: list[str]) -> Any:
    """Exactly the declared placeholders, compared as training compares them (trimmed, any case)."""
    return Annotated[str, StringConstraints(pattern=placeholder_pattern(placeholders))]


def placeholders_of(bundle: Bundle) -> dict[str, list[str]]:
    """Each field's placeholders, as the bundle's fitted encoder holds them."""
    return dict(bundle.pipeline["encode"].missing_values or {})


def _python_name(index: int, name: str) -> str:
    """Field names in CRM exports need not be identifiers; the JSON name is kept as an alias."""
    if name.isidentifier() and not name.startswith("_"):
        return name
    return f"field_{index}_" + re.sub(r"\W", "_", name)


def _description(field: FieldSchema, placeholders: list[str]) -> str:
    parts = [field.description or field.kind]
    if field.categories:
        shown = ", ".join(field.categories[:20]) + (", ..." if len(field.categories) > 20 else "")
        parts.append(f"one of: {shown} (others are scored as unseen)")
    if field.minimum is not None:
        parts.append(f"seen in training from {field.minimum:g} to {field.maximum:g}")
    if placeholders:
        parts.append(f"{', '.join(map(repr, placeholders))} mean not answered: scored as missing")
    return "; ".join(parts)


def _example_value(field: FieldSchema) -> Any:
    if field.kind == "numeric":
        return field.minimum
    if field.kind == "boolean":
        return True
    return field.categories[0] if field.categories else None


def lead_definitions(bundle: Bundle, max_length: int) -> dict[str, tuple[Any, Any]]:
    """Pydantic field definitions for every model field, plus the id field when the spec has one."""
    definitions: dict[str, tuple[Any, Any]] = {}
    id_field = bundle.spec.get("id")
    if id_field:
        definitions[_python_name(-1, id_field)] = (
            _text(max_length) | None,
            Field(default=None, alias=id_field, description="The lead's id, echoed back and used for outcomes."),
        )
    placeholders = placeholders_of(bundle)
    for index, field in enumerate(bundle.schema):
        own = placeholders.get(field.name, [])
        definitions[_python_name(index, field.name)] = (
            _field_type(field, max_length, own),
            Field(
                default=None, alias=field.name, description=_description(field, own), examples=[_example_value(field)]
            ),
        )
    for index, name in enumerate(ignored_fields(bundle)):
        definitions[_python_name(1000 + index, name)] = (
            _scalar(max_length),
            Field(default=None, alias=name, description="Accepted and ignored: never used, stored or logged."),
        )
    return definitions


def ignored_fields(bundle: Bundle) -> list[str]:
    """Fields a CRM sends along that the spec knows but the model must not see: PII, exclusions, the time."""
    spec = bundle.spec
    named = [*spec.get("pii", []), *spec.get("exclude", []), spec.get("time")]
    model_fields = {f.name for f in bundle.schema}
    return [name for name in dict.fromkeys(named) if name and name not in model_fields and name != spec.get("id")]


def build_lead_model(bundle: Bundle, max_length: int = 200) -> type[BaseModel]:
    """The request model for one lead: `/docs` shows the loaded model's real fields."""
    return create_model(
        "Lead",
        __config__=ConfigDict(extra="forbid", populate_by_name=False, title=f"Lead ({bundle.spec.get('name')})"),
        **lead_definitions(bundle, max_length),
    )


def lead_fields_type(bundle: Bundle, max_length: int = 200) -> type:
    """A TypedDict of the lead's JSON fields: validation yields plain dicts, no model objects to dump."""
    fields = {info.alias: annotation for annotation, info in lead_definitions(bundle, max_length).values()}
    typed = TypedDict("LeadFields", fields, total=False)  # type: ignore[misc]
    typed.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return typed


def build_lead_validator(bundle: Bundle, max_length: int = 200) -> TypeAdapter:
    """Validates one raw JSON lead into a plain dict keyed by the JSON names."""
    return TypeAdapter(lead_fields_type(bundle, max_length))


def build_batch_validator(bundle: Bundle, max_length: int = 200) -> TypeAdapter:
    """Validates a whole list of leads in one call; rows are re-checked one by one only when some fail."""
    return TypeAdapter(list[lead_fields_type(bundle, max_length)])


class WhatIfChange(BaseModel):
    field: str
    name: str = Field(description="The field in words, from the dataset spec.")
    value: Any = Field(description="The value to send for the field, as in a lead.")
    label: str = Field(description="The value in words.")
    current_value: Any = None
    current_label: str


class WhatIfSuggestion(BaseModel):
    changes: list[WhatIfChange]
    probability: float = Field(description="The lead's calibrated probability with these changes.")
    grade: str
    gain: float = Field(description="Probability with the changes minus the lead's probability now.")


class WhatIf(BaseModel):
    """What the model associates with conversion for this lead, not proof of cause."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "lead_id": "L0001234",
                "probability": 0.2396,
                "grade": "B",
                "actionable_fields": ["demo_requested", "email_engagement"],
                "suggestions": [
                    {
                        "changes": [
                            {
                                "field": "demo_requested",
                                "name": "demo",
                                "value": True,
                                "label": "Yes",
                                "current_value": False,
                                "current_label": "No",
                            }
                        ],
                        "probability": 0.4465,
                        "grade": "A",
                        "gain": 0.2068,
                    },
                    {
                        "changes": [
                            {
                                "field": "demo_requested",
                                "name": "demo",
                                "value": True,
                                "label": "Yes",
                                "current_value": False,
                                "current_label": "No",
                            },
                            {
                                "field": "email_engagement",
                                "name": "email open rate",
                                "value": 0.703,
                                "label": "70%",
                                "current_value": 0.12,
                                "current_label": "12%",
                            },
                        ],
                        "probability": 0.5978,
                        "grade": "A",
                        "gain": 0.3582,
                    },
                ],
                "notes": [
                    "These are the changes the model associates with a higher chance of converting for leads like "
                    "this one; they are not proof that making a change would cause a sale."
                ],
                "warnings": ["missing field 'region': scored as missing"],
                "model_version": "20261203-160212-f04008",
            }
        }
    )

    lead_id: str | None = None
    probability: float = Field(description="The lead's calibrated probability now.")
    grade: str
    actionable_fields: list[str] = Field(description="The fields the dataset spec marks `actionable: true`.")
    suggestions: list[WhatIfSuggestion] = Field(
        description="The single change that raises the probability most, then the best pair of changes to two "
        "fields when it beats the single; empty when nothing raises it or no field is actionable."
    )
    notes: list[str] = Field(description="Why suggestions are empty, if they are; always: association, not cause.")
    warnings: list[str] = []
    model_version: str
