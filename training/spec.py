"""The dataset spec: which column is the target, which are features, which must never be used."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from training.errors import LeadscoreError


class GradeSpec(BaseModel):
    """How leads are cut into grades: by share of leads (sales capacity) or by fixed probabilities."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field(default="share", pattern="^(share|probability)$")
    # share: A = top 10% of leads, B = next 20%, C = next 30%, D = the rest.
    # probability: A >= 0.40, B >= 0.20, C >= 0.08 (values in cuts replace these).
    cuts: dict[str, float] = Field(default_factory=lambda: {"A": 0.10, "B": 0.30, "C": 0.60})

    @model_validator(mode="after")
    def _cuts_are_ordered(self) -> GradeSpec:
        values = list(self.cuts.values())
        if not values or any(not 0 < v < 1 for v in values):
            raise ValueError("grade cuts must be between 0 and 1")
        ordered = sorted(values) if self.by == "share" else sorted(values, reverse=True)
        if values != ordered:
            raise ValueError(f"grade cuts must be listed best grade first; got {self.cuts}")
        return self


class MissingValues(BaseModel):
    """Values that mean "not answered" (a form's `Select`, `n/a`, `-`): in every feature, or in named fields."""

    model_config = ConfigDict(extra="forbid")

    all: list[str] = Field(default_factory=list)
    fields: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _a_list_means_every_field(cls, raw: Any) -> Any:
        if isinstance(raw, list):
            return {"all": raw}
        if not isinstance(raw, dict):
            raise ValueError(
                "must be a list of placeholders for every field, or a mapping with 'all' (a list) and 'fields' "
                "(field: list), e.g. {all: ['Select'], fields: {city: ['Unknown']}}"
            )
        return raw

    @field_validator("all", mode="before")
    @classmethod
    def _all_are_text(cls, values: Any) -> Any:
        return _placeholder_texts(values)

    @field_validator("fields", mode="before")
    @classmethod
    def _fields_are_text(cls, fields: Any) -> Any:
        if not isinstance(fields, dict):
            return fields
        return {name: _placeholder_texts(values) for name, values in fields.items()}

    def for_field(self, name: str) -> list[str]:
        """The placeholders of one field: every field's, then its own, each once."""
        return list(dict.fromkeys([*self.all, *self.fields.get(name, [])]))


def _placeholder_texts(values: Any) -> Any:
    """Placeholders are text that is not a number: a sentinel such as -999 would silently change a numeric field."""
    if not isinstance(values, list):
        return values
    for value in values:
        if not isinstance(value, str):
            raise ValueError(
                f"{value!r} is not text: list placeholders as quoted text (YAML reads yes, no and null as "
                f"other types, and '-' or '?' unquoted as syntax)"
            )
        if _is_number(value):
            raise ValueError(f"{value!r} is a number; placeholders must be text such as 'Select', 'n/a' or '-'")
    return values


# Units a numeric field may declare; each formats its numbers the way a person says them (see training/wording.py).
UNITS = ("money", "percent", "share", "count", "minutes", "hours", "days", "weeks", "months", "years")


class FieldWording(BaseModel):
    """How a person asks about one field and reads its values; what a rep may ask or change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1)
    question: str | None = Field(default=None, min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    unit: str | None = None
    currency: str | None = Field(default=None, min_length=1)
    askable: bool | None = None
    actionable: bool = False

    @field_validator("labels", mode="before")
    @classmethod
    def _label_keys_are_values(cls, labels: Any) -> Any:
        """YAML reads `true:` and `3:` as a boolean and a number; a label belongs to the value's text."""
        if not isinstance(labels, dict):
            raise ValueError("must be a mapping of value to label, e.g. {decision_maker: Decision-maker}")
        return {label_key(key): _label_text(key, label) for key, label in labels.items()}

    @field_validator("labels")
    @classmethod
    def _labels_are_words(cls, labels: dict[str, str]) -> dict[str, str]:
        empty = [key for key, label in labels.items() if not label.strip()]
        if empty:
            raise ValueError(f"label of {empty[0]!r} is empty")
        return labels

    @field_validator("unit")
    @classmethod
    def _unit_is_known(cls, unit: str | None) -> str | None:
        if unit is not None and unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r} (allowed: {', '.join(UNITS)})")
        return unit

    @model_validator(mode="after")
    def _currency_needs_money(self) -> FieldWording:
        if self.currency is not None and self.unit != "money":
            raise ValueError("currency is only for unit: money")
        return self


def _label_text(key: Any, label: Any) -> Any:
    """A label is words; YAML turns an unquoted Yes or No into a boolean, so say how to keep the word."""
    if isinstance(label, bool):
        raise ValueError(f"label of {label_key(key)!r} is not text: quote it (YAML reads yes, no, on, off as booleans)")
    return str(label) if isinstance(label, int | float) else label


def label_key(value: Any) -> str:
    """The text a value is labelled under: true/false for booleans, 3 for the codes 3 and 3.0, else its text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class DatasetSpec(BaseModel):
    """What an analyst writes about a lead table; nothing else about the data is hard-coded."""

    model_config = ConfigDict(extra="forbid")

    name: str = "leads"
    target: str
    positive: str | int | bool = 1
    id: str | None = None
    time: str | None = None
    value: str | None = None
    features: list[str] | None = None
    categorical: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    pii: list[str] = Field(default_factory=list)
    allow_leaky: list[str] = Field(default_factory=list)
    grades: GradeSpec = Field(default_factory=GradeSpec)
    description: dict[str, str] = Field(default_factory=dict)
    missing_values: MissingValues = Field(default_factory=MissingValues)
    fields: dict[str, FieldWording] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _wording_names_features(self) -> DatasetSpec:
        special = {self.target, self.id, self.time, self.value}
        named = sorted(name for name in self.fields if name in special)
        if named:
            raise ValueError(
                f"fields names {', '.join(map(repr, named))}, the spec's target, id, time or value; "
                f"wording applies to feature fields only"
            )
        return self

    @model_validator(mode="after")
    def _placeholders_name_features(self) -> DatasetSpec:
        # excluded and PII fields may keep theirs (excluding a field should not need a second edit): never used
        special = {self.target, self.id, self.time, self.value}
        named = sorted(name for name in self.missing_values.fields if name in special)
        if named:
            raise ValueError(
                f"missing_values.fields names {', '.join(map(repr, named))}, the spec's target, id, time or "
                f"value; placeholders apply to feature fields only"
            )
        return self

    def missing_values_for(self, names: Iterable[str]) -> dict[str, list[str]]:
        """Each named field's placeholders (declared for every field or for it), fields without any left out."""
        resolved = {name: self.missing_values.for_field(name) for name in names}
        return {name: values for name, values in resolved.items() if values}

    def reserved_columns(self) -> set[str]:
        """Columns that are never model inputs: target, id, time, value, exclusions and PII."""
        named = {self.target, self.id, self.time, self.value}
        return {c for c in named if c} | set(self.exclude) | set(self.pii)

    def named_columns(self) -> set[str]:
        """Every column the spec mentions, so each can be checked against the table."""
        listed = set(self.features or []) | set(self.categorical) | set(self.allow_leaky)
        listed |= set(self.missing_values.fields) | set(self.fields)
        return self.reserved_columns() | listed

    def feature_candidates(self, columns: Iterable[str]) -> list[str]:
        """The features: those listed, or every column not reserved (in table order)."""
        if self.features is not None:
            return [c for c in self.features if c not in self.reserved_columns()]
        reserved = self.reserved_columns()
        return [c for c in columns if c not in reserved]


def read_spec(path: Path | str) -> DatasetSpec:
    """Read a spec YAML file, turning every problem into a one-line error."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LeadscoreError(f"spec file {path} not found; pass --spec with a dataset spec YAML") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise LeadscoreError(f"spec file {path} is not valid YAML: {_yaml_problem(exc)}") from None
    return parse_spec(raw, source=str(path))


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's own problem and line ('expected ',' or ']' on line 3'), not just its first line."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} on line {mark.line + 1}"
    return str(exc).splitlines()[0]


def parse_spec(raw: Any, source: str = "spec") -> DatasetSpec:
    """Validate a parsed spec mapping; unknown keys and wrong types are errors, not silently ignored."""
    if not isinstance(raw, dict):
        raise LeadscoreError(f"{source}: a spec must be a mapping with at least a 'target' key")
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        raise LeadscoreError(f"{source}: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per spec problem, joined: 'key: problem'."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = (
            "unknown key (allowed: " + ", ".join(_section(err["loc"]).model_fields) + ")"
            if err["type"] == "extra_forbidden"
            else err["msg"].removeprefix("Value error, ")
        )
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def _section(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The part of the spec an unknown key was found in, whose keys the error lists."""
    if loc[0] == "fields" and len(loc) > 2:
        return FieldWording
    sections: dict[Any, type[BaseModel]] = {"grades": GradeSpec, "missing_values": MissingValues}
    return sections.get(loc[0], DatasetSpec) if len(loc) > 1 else DatasetSpec


def check_spec_columns(spec: DatasetSpec, columns: Iterable[str]) -> None:
    """Refuse a spec that names columns the table does not have."""
    present = list(columns)
    missing = sorted(c for c in spec.named_columns() if c not in set(present))
    if missing:
        shown = ", ".join(present[:12]) + (", ..." if len(present) > 12 else "")
        raise LeadscoreError(
            f"spec names column(s) {', '.join(repr(m) for m in missing)} not found in the data; "
            f"columns present: {shown}"
        )


def write_spec(spec: DatasetSpec, path: Path | str, header: str = "") -> None:
    """Write a spec as YAML, leaving out keys that hold their defaults."""
    essentials = {"name": spec.name, "target": spec.target, "positive": spec.positive}
    body = yaml.safe_dump(
        essentials | spec.model_dump(exclude_defaults=True), sort_keys=False, allow_unicode=True, width=100
    )
    Path(path).write_text(header + body, encoding="utf-8")
