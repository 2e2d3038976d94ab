"""The spec loader turns every mistake into one line that names it."""

from pathlib import Path

import pytest

from training.errors import LeadscoreError
from training.spec import DatasetSpec, check_spec_columns, parse_spec, read_spec

REPO = Path(__file__).resolve().parents[2]


def test_spec_naming_a_missing_column_is_refused_by_name() -> None:
    spec = parse_spec({"target": "converted", "id": "lead_id", "exclude": ["account_mgr"]})
    with pytest.raises(LeadscoreError) as err:
        check_spec_columns(spec, ["lead_id", "converted", "owns_home"])
    message = str(err.value)
    assert "'account_mgr'" in message and "\n" not in message
    assert "owns_home" in message  # shows what is there


def test_spec_with_all_columns_present_passes() -> None:
    spec = parse_spec({"target": "converted", "id": "lead_id", "pii": ["email"]})
    check_spec_columns(spec, ["lead_id", "converted", "email", "owns_home"])


def test_unknown_spec_key_is_refused() -> None:
    with pytest.raises(LeadscoreError, match="targte: unknown key"):
        parse_spec({"targte": "converted"})


def test_missing_target_is_refused() -> None:
    with pytest.raises(LeadscoreError, match="target: Field required"):
        parse_spec({"id": "lead_id"})


def test_grade_cuts_must_be_ordered() -> None:
    with pytest.raises(LeadscoreError, match="best grade first"):
        parse_spec({"target": "y", "grades": {"by": "share", "cuts": {"A": 0.5, "B": 0.2}}})


@pytest.mark.parametrize("text", ["target: [unclosed", "- just\n- a list\n", ""])
def test_unreadable_spec_files_give_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(LeadscoreError) as err:
        read_spec(path)
    assert "\n" not in str(err.value)


def test_yaml_errors_say_what_and_where(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("target: converted\nexclude: [a, b\npii: []\n")
    with pytest.raises(LeadscoreError, match=r"on line \d+"):
        read_spec(path)


def test_missing_spec_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(LeadscoreError, match="not found"):
        read_spec(tmp_path / "nope.yaml")


def test_features_default_to_every_unreserved_column() -> None:
    spec = DatasetSpec(target="y", id="id", time="t", value="v", exclude=["leak"], pii=["email"])
    columns = ["id", "t", "email", "a", "b", "leak", "y", "v"]
    assert spec.feature_candidates(columns) == ["a", "b"]


def test_caravan_spec_reads() -> None:
    spec = read_spec(REPO / "data/specs/caravan.yaml")
    assert spec.target == "Purchase" and spec.positive == "Yes"


def test_missing_values_are_a_list_for_every_field_or_per_field_lists() -> None:
    every = parse_spec({"target": "y", "missing_values": ["Select", "n/a"]})
    assert every.missing_values_for(["city", "plan"]) == {"city": ["Select", "n/a"], "plan": ["Select", "n/a"]}
    both = parse_spec({"target": "y", "missing_values": {"all": ["Select"], "fields": {"city": ["Unknown", "Select"]}}})
    assert both.missing_values_for(["city", "plan"]) == {"city": ["Select", "Unknown"], "plan": ["Select"]}
    assert parse_spec({"target": "y"}).missing_values_for(["city"]) == {}
    excluded = parse_spec({"target": "y", "exclude": ["city"], "missing_values": {"fields": {"city": ["Select"]}}})
    assert excluded.feature_candidates(["city", "plan", "y"]) == ["plan"]


@pytest.mark.parametrize(
    ("missing_values", "problem"),
    [
        ("Select", "missing_values: must be a list of placeholders"),
        ([-999], "missing_values.all: -999 is not text"),
        (["-999"], "missing_values.all: '-999' is a number"),
        ([None], "missing_values.all: None is not text"),
        ({"fields": {"city": "Select"}}, "missing_values.fields.city: Input should be a valid list"),
        ({"fields": {"city": [True]}}, "True is not text"),
        ({"every": ["Select"]}, "missing_values.every: unknown key (allowed: all, fields)"),
        ({"fields": {"y": ["Select"]}}, "missing_values.fields names 'y', the spec's target"),
    ],
)
def test_missing_values_of_the_wrong_shape_are_refused(missing_values: object, problem: str) -> None:
    with pytest.raises(LeadscoreError) as err:
        parse_spec({"target": "y", "missing_values": missing_values})
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_missing_values_for_a_field_the_table_lacks_are_refused_by_name() -> None:
    spec = parse_spec({"target": "converted", "missing_values": {"fields": {"ctiy": ["Select"]}}})
    with pytest.raises(LeadscoreError, match="'ctiy' not found in the data"):
        check_spec_columns(spec, ["converted", "city"])


def test_missing_values_read_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text('target: y\nmissing_values:\n  all: [Select, "-", "?"]\n  fields:\n    city: [Unknown]\n')
    missing = read_spec(path).missing_values
    assert (missing.all, missing.fields) == (["Select", "-", "?"], {"city": ["Unknown"]})
