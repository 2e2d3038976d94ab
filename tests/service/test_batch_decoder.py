"""The strict batch decoder never accepts what the lead schema refuses, and reads what it accepts alike."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from service.batch_decoder import BatchDecoder
from service.schemas import build_batch_validator, ignored_fields
from service.scorer import Scorer
from tests.conftest import Trained
from training.synthetic import generate_leads

MAX_LENGTH = 12  # short, so generated text often crosses the limit
# Number literals orjson cannot write: placeholders, unquoted in the body.
_BEYOND_DOUBLE, _BEYOND_INT64 = "1e400", str(2**70)

# Values of every JSON kind, including the near misses: words for booleans, integral floats for codes,
# text around the length limit, numbers beyond the double range, nested values.
_json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1.0, 33.0, -0.0, 1e308, _BEYOND_DOUBLE, _BEYOND_INT64]),
    st.text(max_size=MAX_LENGTH + 2),
    st.sampled_from(["yes", "no", "0", "1", "true", " north ", "33", "", "é" * MAX_LENGTH, "é" * (MAX_LENGTH + 1)]),
    st.lists(st.integers(min_value=0, max_value=9), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(min_value=0, max_value=9), max_size=1),
)
# Values of the field's own kind, so that many generated batches pass and their readings are compared.
_kind_values = {
    "numeric": st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.integers(min_value=0, max_value=100)),
    "boolean": st.booleans(),
    "categorical": st.one_of(st.sampled_from(["north", "paid_search", "decision_maker", "33"]), st.integers(0, 99)),
}


def _lead_strategy(bundle: Any, names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Any subset of the fields with values of their kind; half the time one field (or an unknown one) gets anything."""
    kinds = {field.name: field.kind for field in bundle.schema}
    lead = st.fixed_dictionaries(
        {}, optional={name: st.one_of(st.none(), _kind_values[kinds.get(name, "categorical")]) for name in names}
    )
    odd_one = st.tuples(st.sampled_from([*names, "unknown_field"]), _json_values)
    return st.tuples(lead, st.none() | odd_one).map(lambda drawn: drawn[0] | dict([drawn[1]] if drawn[1] else []))


@pytest.fixture(scope="module")
def decoding(trained: Trained) -> tuple[BatchDecoder, Any, Scorer, st.SearchStrategy[dict[str, Any]]]:
    bundle = trained.bundle
    scorer = Scorer(bundle)
    names = [*scorer.read_fields, *ignored_fields(bundle)]
    decoder = BatchDecoder(bundle, ignored_fields(bundle), scorer.read_fields, MAX_LENGTH)
    return decoder, build_batch_validator(bundle, MAX_LENGTH), scorer, _lead_strategy(bundle, names)


def _body(leads: list[dict[str, Any]]) -> bytes:
    body = orjson.dumps({"leads": leads})
    for literal in (_BEYOND_DOUBLE, _BEYOND_INT64):
        body = body.replace(f'"{literal}"'.encode(), literal.encode())
    return body


def _same(left: list[Any], right: list[Any]) -> bool:
    return len(left) == len(right) and all(
        type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))
        for a, b in zip(left, right, strict=True)
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_what_the_decoder_accepts_the_schema_accepts_with_equal_values(decoding: Any, data: st.DataObject) -> None:
    decoder, validator, scorer, lead = decoding
    leads = data.draw(st.lists(lead, max_size=4))
    body = _body(leads)
    decoded = decoder.decode(body)
    if decoded is None:
        return
    try:  # the full path: JSON parsing, then the schema
        validated = validator.validate_python(orjson.loads(body)["leads"])
    except (orjson.JSONDecodeError, ValidationError) as exc:
        pytest.fail(f"the decoder accepted what the schema refuses: {exc}")
    expected = scorer.columns_of(validated)
    assert decoded.count == len(validated)
    for name in scorer.read_fields:
        assert _same(decoded.columns[name], expected[name]), name


def test_ordinary_batches_take_the_fast_path_and_read_alike(trained: Trained) -> None:
    bundle = trained.bundle
    scorer = Scorer(bundle)
    decoder = BatchDecoder(bundle, ignored_fields(bundle), scorer.read_fields)
    validator = build_batch_validator(bundle)
    frame = generate_leads(n=500, seed=7)
    frame["created_at"] = frame["created_at"].astype(str)  # what a CRM sends: text
    leads = frame.astype(object).where(frame.notna(), None).to_dict("records")
    leads = [{k: v for k, v in lead.items() if k not in ("converted", "deal_value")} for lead in leads]
    body = _body(leads)
    decoded = decoder.decode(body)
    assert decoded is not None and decoded.count == 500
    expected = scorer.columns_of(validator.validate_python(orjson.loads(body)["leads"]))
    assert all(_same(decoded.columns[name], expected[name]) for name in scorer.read_fields)


@pytest.mark.parametrize(
    "body",
    [
        b'{"leads": [{"owns_home": "yes"}]}',  # a word the schema reads as a boolean: the full path decides
        b'{"leads": [{"region": "north"}], "extra": 1}',
        b'{"leads": {"region": "north"}}',
        b'{"leads": [{"stated_budget": 1e400}]}',
        b'{"leads": [{"region": 1.0}]}',
        b'{"leads": [null]}',
        b'{"leads": [{"nope": 1}]}',
        b'{"leads": [{"region": "\\ud800"}]}',
        b"\xef\xbb\xbf{}",
    ],
)
def test_anything_outside_the_narrow_types_goes_to_the_full_path(decoding: Any, body: bytes) -> None:
    decoder = decoding[0]
    assert decoder.decode(body) is None
