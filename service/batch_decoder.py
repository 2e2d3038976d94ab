"""The batch body's fast path: msgspec decodes and type-checks ``{"leads": [...]}`` in one pass, in C.

Its types are the lead schema's (``service.schemas``), only narrower: booleans must be JSON ``true`` or
``false`` here, while the schema also takes the words the training data used. So whatever this decoder
accepts, the pydantic validator accepts with the same values; whenever it refuses anything, the caller
takes the full path (JSON parsing, then pydantic row by row), which decides and names each problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from msgspec.structs import astuple

from service.errors import INT64_MAX, INT64_MIN
from service.schemas import placeholders_of
from training.bundle import Bundle
from training.placeholders import placeholder_pattern
from training.schema import FieldSchema


@dataclass(frozen=True)
class DecodedBatch:
    """Validated leads as one list per field the scorer reads, all of one length."""

    columns: dict[str, list[Any]]
    count: int


# Integers beyond 64 bits go to the full path, which refuses them by name (the databases cannot store them).
_Int64 = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]
# A NUL character, which the database cannot store, escaped as JSON must escape it (the hex digits are zeros).
_NUL_ESCAPE = b"\\u0000"


def _text(max_length: int) -> Any:
    return Annotated[str, Meta(max_length=max_length)] | _Int64 | None


def _field_type(field: FieldSchema, max_length: int, placeholders: list[str]) -> Any:
    if field.kind == "numeric":
        # JSON numbers only; msgspec refuses numbers beyond the double range
        return float | _placeholder(placeholders) | None if placeholders else float | None
    if field.kind == "boolean":
        return bool | _placeholder(placeholders) | None if placeholders else bool | None
    return _text(max_length)


def _placeholder(placeholders: list[str]) -> Any:
    """The declared placeholders of a number or boolean, the same pattern the lead schema uses."""
    return Annotated[str, Meta(pattern=placeholder_pattern(placeholders))]


class BatchDecoder:
    """Built once per loaded model from its bundle; ``decode`` returns None when the full path must decide."""

    def __init__(self, bundle: Bundle, ignored: list[str], read_fields: list[str], max_length: int = 200) -> None:
        types: dict[str, Any] = {}
        id_field = bundle.spec.get("id")
        if id_field:
            types[id_field] = _text(max_length)
        placeholders = placeholders_of(bundle)
        for field in bundle.schema:
            types[field.name] = _field_type(field, max_length, placeholders.get(field.name, []))
        for name in ignored:
            types[name] = Annotated[str, Meta(max_length=max_length)] | _Int64 | float | bool | None
        # JSON names need not be identifiers: the struct's attributes are f0, f1, ... renamed to them.
        attribute = {name: f"f{index}" for index, name in enumerate(types)}
        lead = msgspec.defstruct(
            "Lead",
            [(attribute[name], kind, None) for name, kind in types.items()],
            rename={attribute[name]: name for name in types},
            forbid_unknown_fields=True,
            gc=False,  # scalars only, so never in a cycle: a thousand leads add nothing to the collector's work
        )
        batch = msgspec.defstruct("Batch", [("leads", list[lead])], forbid_unknown_fields=True)
        self._decoder = msgspec.json.Decoder(batch)
        self._read_fields = read_fields
        position = {name: index for index, name in enumerate(types)}
        self._positions = [position[name] for name in read_fields]

    def decode(self, body: bytes) -> DecodedBatch | None:
        if _NUL_ESCAPE in body:  # NUL can only arrive escaped; the full path names the field that holds it
            return None
        try:
            leads = self._decoder.decode(body).leads
        except (msgspec.DecodeError, UnicodeDecodeError):  # malformed JSON or UTF-8, or a value outside the types
            return None
        if not leads:
            return DecodedBatch({name: [] for name in self._read_fields}, 0)
        # rows to columns in C, a third of the cost of one getter per field; every row has every field
        fields = list(zip(*map(astuple, leads), strict=True))
        columns = {name: list(fields[i]) for name, i in zip(self._read_fields, self._positions, strict=True)}
        return DecodedBatch(columns, len(leads))
