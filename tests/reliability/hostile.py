"""Hostile requests that a schema-driven generator rarely draws: the inputs that break parsers and databases.

Schemathesis draws values the OpenAPI describes; defects hide at the edges it seldom reaches. These Hypothesis
strategies aim there on purpose: integers at and beyond 64 bits, NUL and control characters in every string
(ids in paths too), lone surrogates, invalid UTF-8 and overlong encodings, date-times at the calendar's edges
with extreme offsets, and duplicate keys. Bodies are written byte by byte (``encode``), since no JSON library
writes most of these. Every reply must be below 500, and a lead must get the same answer from the single-lead
route as from the batch route.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

# integers either side of every 64-bit boundary, and far beyond
INTEGER_EDGES = [
    2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 1, -(2**63), -(2**63) - 1, -(2**64), 10**30, -(10**40), 2**53 + 1, 0,
]  # fmt: skip
# byte sequences no UTF-8 decoder may accept: overlong "/", a surrogate, past U+10FFFF, truncated, stray bytes
INVALID_UTF8 = [
    b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xc1\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80", b"\xc3", b"\xe2\x82", b"\xff", b"\xfe", b"\x80",
]  # fmt: skip
TEXT_EDGES = ["\x00", "a\x00b", "\x00" * 3, "\x1f", "\x7f", "\x85", "\u2028", "\ufeff", "\U0010ffff", "\ud800", "", " "]
CALENDAR_EDGES = [datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999_999), datetime(1970, 1, 1)]


@dataclass(frozen=True)
class RawText:
    """A JSON string whose bytes are written as they are: invalid UTF-8 inside quotes."""

    raw: bytes


@dataclass(frozen=True)
class Pairs:
    """A JSON object written pair by pair, so a key may appear twice."""

    items: tuple[tuple[str, Any], ...]


def edge_integers() -> st.SearchStrategy[int]:
    """Integers at the 64-bit boundaries and beyond, and anywhere between 2**60 and 2**70 either side of zero."""
    near = st.integers(min_value=2**60, max_value=2**70)
    return st.one_of(st.sampled_from(INTEGER_EDGES), near, near.map(lambda n: -n))


def hostile_text(max_size: int = 12) -> st.SearchStrategy[str]:
    """Any code point, surrogates and control characters included, and the edges above mixed into ordinary text."""
    anything = st.characters(min_codepoint=0, max_codepoint=0x10FFFF)
    controls = st.characters(min_codepoint=0, max_codepoint=0x1F)
    mixed = st.lists(st.one_of(st.sampled_from(TEXT_EDGES), st.text(st.one_of(anything, controls), max_size=4)))
    return st.one_of(st.sampled_from(TEXT_EDGES), st.text(anything, max_size=max_size), mixed.map("".join))


def invalid_text() -> st.SearchStrategy[RawText]:
    """A string holding bytes that are not UTF-8, alone or inside ordinary text."""
    return st.builds(
        lambda before, bad, after: RawText(before.encode() + bad + after.encode()),
        st.text("abc/", max_size=3),
        st.sampled_from(INVALID_UTF8),
        st.text("xyz", max_size=3),
    )


def edge_datetimes() -> st.SearchStrategy[str]:
    """ISO 8601 text at the calendar's first and last instants with offsets up to ±23:59, and anywhere between."""
    offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
    moments = st.one_of(st.sampled_from(CALENDAR_EDGES), st.datetimes())
    aware = st.builds(lambda moment, offset: moment.replace(tzinfo=offset).isoformat(), moments, offsets)
    naive = moments.map(datetime.isoformat)
    return st.one_of(aware, naive, st.sampled_from(["10000-01-01T00:00:00", "0000-12-31T00:00:00", "9999-12-31T24:00"]))


def hostile_scalars() -> st.SearchStrategy[Any]:
    """Any JSON scalar from the edges above, plus invalid UTF-8 strings."""
    return st.one_of(
        edge_integers(),
        hostile_text(),
        invalid_text(),
        edge_datetimes(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([1e308, -1e308, 5e-324, 2.0**63, -(2.0**63), 2.0**64, 33.0]),
        st.booleans(),
        st.none(),
    )


def hostile_objects(keys: list[str], values: st.SearchStrategy[Any], max_size: int = 6) -> st.SearchStrategy[Pairs]:
    """Objects with these keys, some of them twice, and now and then (one key in eight) a hostile key."""
    odd = hostile_text(max_size=4)
    key = st.one_of(*[st.sampled_from(keys)] * 7, odd) if keys else odd
    return st.lists(st.tuples(key, values), max_size=max_size).map(lambda items: Pairs(tuple(items)))


def json_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a property's schema admits (through anyOf, as pydantic writes unions)."""
    found = {schema["type"]} if isinstance(schema.get("type"), str) else set(schema.get("type") or [])
    for option in schema.get("anyOf", []):
        found |= json_types(option)
    return found


def edge_values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values at the edges of what this property takes: each type it admits pushed to its limits."""
    kinds = json_types(schema)
    options: list[st.SearchStrategy[Any]] = []
    if "integer" in kinds or "number" in kinds:
        options.append(edge_integers())
    if "number" in kinds:
        options.append(st.sampled_from([1e308, -1e308, 5e-324, 2.0**63, 2.0**64, -(2.0**63) - 2048, 33.0]))
    if "string" in kinds:
        options += [hostile_text(), invalid_text(), edge_datetimes()]
    if "boolean" in kinds:
        options.append(st.booleans())
    return st.one_of(*options) if options else hostile_scalars()


def hostile_leads(properties: dict[str, dict[str, Any]]) -> st.SearchStrategy[Pairs]:
    """A lead with one of the model's own fields at the edge of what it takes, and now and then a second problem:
    any hostile value, a hostile key or a key twice. One problem at a time, so that what each does shows (a lead
    with five problems is refused for the first)."""
    names = sorted(properties)
    edge = st.sampled_from(names).flatmap(lambda name: st.tuples(st.just(name), edge_values(properties[name])))
    anything = st.tuples(st.one_of(st.sampled_from(names), hostile_text(max_size=4)), hostile_scalars())
    second = st.one_of(st.none(), st.none(), edge, anything)
    return st.builds(
        lambda first, extra, twice: Pairs((first, *([extra] if extra else []), *([first] if twice else []))),
        edge,
        second,
        st.booleans(),
    )


def hostile_ids() -> st.SearchStrategy[str]:
    """A lead id as it appears in a path: percent-encoded hostile text, or percent-encoded invalid UTF-8."""
    text = hostile_text().filter(bool).map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe=""))
    raw = invalid_text().map(lambda t: quote(t.raw, safe=""))
    return st.one_of(text, raw)


def outcome_bodies() -> st.SearchStrategy[Pairs]:
    """Outcome reports: mostly well formed, with a hostile time or value, and duplicate keys."""
    converted = st.tuples(st.just("converted"), st.one_of(st.booleans(), hostile_scalars()))
    occurred = st.tuples(st.just("occurred_at"), st.one_of(edge_datetimes(), hostile_scalars()))
    value = st.tuples(st.just("value"), st.one_of(st.floats(), edge_integers(), hostile_scalars()))
    fields = st.lists(st.one_of(occurred, value, converted), max_size=4)
    return st.builds(lambda first, rest: Pairs((first, *rest)), converted, fields)


def encode(value: Any, ascii_only: bool = False) -> bytes:
    """JSON bytes for anything the strategies make: duplicate keys, raw invalid UTF-8, lone surrogates (as
    ``\\ud800`` escapes when ``ascii_only``, else as the invalid UTF-8 they encode to), integers of any size."""
    if isinstance(value, RawText):
        return b'"' + value.raw + b'"'
    if isinstance(value, Pairs):
        return b"{" + b",".join(encode(k, ascii_only) + b":" + encode(v, ascii_only) for k, v in value.items) + b"}"
    if isinstance(value, dict):
        return encode(Pairs(tuple(value.items())), ascii_only)
    if isinstance(value, list | tuple):
        return b"[" + b",".join(encode(item, ascii_only) for item in value) + b"]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()


def is_plain(value: Any) -> bool:
    """Whether the value is text any JSON reader can read: no raw invalid UTF-8, no lone surrogate."""
    if isinstance(value, RawText):
        return False
    if isinstance(value, Pairs):
        return all(is_plain(k) and is_plain(v) for k, v in value.items)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True
