"""Fields and their values in a person's words: the question a rep asks, how an answer reads, what may be asked.

The spec's `fields` section gives the words (`question`, `name`, value `labels`, a number's `unit`) and what a
rep may do (`askable`, `actionable`). Everything it leaves out gets a humanised default: `contact_role` is
"contact role", asked "Contact role?"; `decision_maker` reads "Decision maker"; 18280 in a money field
reads "$18,300". Training stores one ``Wording`` in the bundle, so the CLI, the page and the API say the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from training.model import BOOLEAN_CODES
from training.spec import DatasetSpec, FieldWording, label_key

MISSING_LABEL = "not answered"
_CURRENCY = "$"
_TIME_UNITS = ("minutes", "hours", "days", "weeks", "months", "years")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True)
class Wording:
    """How every model field is asked about and its values read; built once in training, kept in the bundle."""

    kinds: dict[str, str]
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Fields that describe when a lead came in rather than who it is, with the share that measured it.
    time_proxies: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_spec(
        cls,
        spec: DatasetSpec | Mapping[str, Any],
        kinds: Mapping[str, str],
        time_proxies: Mapping[str, float] | None = None,
    ) -> Wording:
        """The spec's words for the model's fields; a spec dict from an older bundle without them is fine."""
        raw = spec.model_dump().get("fields", {}) if isinstance(spec, DatasetSpec) else dict(spec.get("fields") or {})
        entries = {name: FieldWording.model_validate(raw[name]).model_dump() for name in kinds if name in raw}
        return cls(dict(kinds), entries, {name: float(share) for name, share in (time_proxies or {}).items()})

    def _entry(self, name: str) -> dict[str, Any]:
        return self.fields.get(name, {})

    def field_name(self, name: str) -> str:
        """The field as it reads inside a sentence: the spec's `name`, else "contact role" from contact_role."""
        return self._entry(name).get("name") or humanised(name)

    def question(self, name: str) -> str:
        """What a rep asks: the spec's `question`, else the field's name as a question ("Owns home?")."""
        return self._entry(name).get("question") or capitalised(self.field_name(name)) + "?"

    def label(self, name: str, value: Any) -> str:
        """One value as a person reads it: the spec's label, else yes/no, a humanised category, or a number with
        separators, sensible rounding and its unit."""
        if _is_missing(value):
            return MISSING_LABEL
        kind = self.kinds.get(name, "categorical")
        labels = self._entry(name).get("labels") or {}
        key = _boolean_key(value) if kind == "boolean" else label_key(value)
        if key is not None and key in labels:
            return labels[key]
        if kind == "boolean":
            return {"true": "Yes", "false": "No"}.get(key or "", str(value))
        if kind == "numeric" and _is_number(value):
            return self.number(name, float(value))
        return humanised_value(key if key is not None else str(value))

    def has_label(self, name: str, value: Any) -> bool:
        """Whether the spec gives this value words of its own (codes such as 5 = "50-62%")."""
        labels = self._entry(name).get("labels") or {}
        key = _boolean_key(value) if self.kinds.get(name) == "boolean" else label_key(value)
        return key is not None and key in labels

    def number(self, name: str, value: float) -> str:
        """A number of this field with its unit, rounded the way people say it (no labels applied)."""
        return formatted_number(value, self._entry(name).get("unit"), self._entry(name).get("currency"))

    def unit(self, name: str) -> str | None:
        return self._entry(name).get("unit")

    def askable(self, name: str) -> bool:
        """Whether a rep can ask it: the spec's `askable`, else every model field that is not a time proxy."""
        if name not in self.kinds:
            return False
        stated = self._entry(name).get("askable")
        if stated is not None:
            return bool(stated)
        return name not in self.time_proxies

    def actionable(self, name: str) -> bool:
        """Whether a rep can change it (a demo, a follow-up call): only where the spec says `actionable: true`."""
        return name in self.kinds and bool(self._entry(name).get("actionable"))

    def askable_fields(self) -> list[str]:
        return [name for name in self.kinds if self.askable(name)]

    def actionable_fields(self) -> list[str]:
        return [name for name in self.kinds if self.actionable(name)]

    def to_dict(self) -> dict[str, Any]:
        """Per field, everything a client needs to word it (JSON types only)."""
        return {
            name: {
                "kind": kind,
                "name": self.field_name(name),
                "question": self.question(name),
                "unit": self.unit(name),
                "labels": dict(self._entry(name).get("labels") or {}),
                "askable": self.askable(name),
                "actionable": self.actionable(name),
                "time_proxy": name in self.time_proxies,
            }
            for name, kind in self.kinds.items()
        }


def humanised(name: str) -> str:
    """A column name in words: contact_role and ContactRole become "contact role"; codes such as MHKOOP stay."""
    if name.isupper():
        return name
    spaced = _CAMEL_BOUNDARY.sub(" ", name).replace("_", " ").replace(".", " ")
    words = [word if word.isupper() and len(word) > 1 else word.lower() for word in spaced.split()]
    return " ".join(words) or name


def humanised_value(text: str) -> str:
    """A category as words: decision_maker reads "Decision maker"; codes and mixed-case names keep their case."""
    if text.islower() and "_" in text:
        text = text.replace("_", " ")
    return capitalised(text) if text.islower() else text


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def formatted_number(value: float, unit: str | None = None, currency: str | None = None) -> str:
    """18280 as money is "$18,300", 12.4 minutes "12 minutes", 0.347 as a share "35%": people round."""
    if not math.isfinite(value):
        return str(value)
    if unit == "share":
        return f"{_rounded_text(value * 100)}%"
    if unit == "percent":
        return f"{_rounded_text(value)}%"
    if unit == "money":
        sign = "-" if value < 0 else ""
        return f"{sign}{currency or _CURRENCY}{_rounded_text(abs(value))}"
    if unit == "count":
        return f"{round(value):,}"
    if unit in _TIME_UNITS:
        text = _rounded_text(value)
        return f"{text} {unit[:-1] if text == '1' else unit}"
    return _rounded_text(value)


def _rounded_text(value: float) -> str:
    """Three significant digits from 100 up, whole numbers from 10, then one or two decimals, with separators."""
    size = abs(value)
    if size >= 100:
        digits = 2 - math.floor(math.log10(size))
        return f"{round(value, digits):,.0f}"
    if size >= 10 or float(value).is_integer():
        return f"{round(value):,}"
    if size >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2g}"


def _boolean_key(value: Any) -> str | None:
    """true / false from any spelling a boolean field accepts (True, 1, "yes"), None for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    code = BOOLEAN_CODES.get(label_key(value).lower())
    if code is None:
        return None
    return "true" if code == 1.0 else "false"


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
