"""Placeholders such as a form's `Select` are missing values when declared, and suggested when only suspected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import Trained, TrainingEnv
from training.bundle import load_bundle
from training.data import prepare_leads
from training.model import LeadEncoder
from training.placeholders import looks_like_placeholder, mask_placeholders, suggest_placeholders
from training.profile import profile_best_customers
from training.spec import MissingValues, parse_spec, write_spec
from training.synthetic import PLACEHOLDERS, SAMPLE_SPEC, generate_leads

UNDECLARED = SAMPLE_SPEC.model_copy(update={"missing_values": MissingValues()})


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return generate_leads(n=20_000, seed=0)


def test_every_fields_placeholders_become_missing_before_kinds_are_inferred() -> None:
    rng = np.random.default_rng(0)
    n = 400
    raw = pd.DataFrame(
        {
            "pages": np.where(rng.random(n) < 0.2, "-", rng.integers(0, 50, n).astype(str)).astype(object),
            "plan": rng.choice(["basic", "pro", " N/A ", "n/a"], n),
            "converted": rng.random(n) < 0.5,
        }
    )
    raw.loc[0, "pages"] = "12"  # text that is a number stays a number once the placeholders are gone
    table = prepare_leads(raw, parse_spec({"target": "converted", "missing_values": ["-", "n/a"]}))
    assert table.kinds == {"pages": "numeric", "plan": "categorical"}
    assert table.features["pages"].isna().sum() == (raw["pages"] == "-").sum()
    assert table.features.loc[0, "pages"] == 12
    assert set(table.features["plan"].dropna()) == {"basic", "pro"}  # any case, surrounding spaces trimmed
    assert table.features["plan"].isna().sum() == raw["plan"].str.strip().str.lower().eq("n/a").sum()
    assert any("'pages': placeholders treated as missing ('-' in" in note for note in table.notes)


def test_a_fields_own_placeholders_apply_to_it_alone() -> None:
    rng = np.random.default_rng(1)
    n = 400
    raw = pd.DataFrame(
        {
            "city": rng.choice(["Leeds", "York", "Unknown", "Select"], n),
            "source": rng.choice(["web", "Unknown", "Select"], n),
            "converted": rng.random(n) < 0.5,
        }
    )
    spec = parse_spec({"target": "converted", "missing_values": {"all": ["Select"], "fields": {"city": ["unknown"]}}})
    table = prepare_leads(raw, spec)
    assert set(table.features["city"].dropna()) == {"Leeds", "York"}
    assert set(table.features["source"].dropna()) == {"web", "Unknown"}
    assert table.missing_values == {"city": ["Select", "unknown"], "source": ["Select"]}


def test_without_the_declaration_a_placeholder_is_an_ordinary_category(leads: pd.DataFrame) -> None:
    table = prepare_leads(leads, UNDECLARED)
    assert (table.features["city"] == "Select").mean() > 0.2
    declared = prepare_leads(leads, SAMPLE_SPEC)
    assert "Select" not in set(declared.features["city"].dropna())
    assert (
        declared.features["city"].isna().sum()
        == table.features["city"].isna().sum() + (table.features["city"] == "Select").sum()
    )


def test_the_encoder_carries_its_placeholders_to_every_later_lead() -> None:
    frame = pd.DataFrame({"city": ["Leeds", "York", "Select", None], "pages": [1.0, "n/a", 3.0, 4.0]})
    encoder = LeadEncoder(
        {"city": "categorical", "pages": "numeric"}, missing_values={"city": ["Select"], "pages": ["n/a"]}
    ).fit(frame)
    assert encoder.categories_["city"] == ["Leeds", "York"]
    later = encoder.transform(pd.DataFrame({"city": [" SELECT", "York", None], "pages": ["N/A", 2.0, None]}))
    np.testing.assert_array_equal(later, [[np.nan, np.nan], [1.0, 2.0], [np.nan, np.nan]])
    assert encoder.placeholders("city") == {"select"} and encoder.placeholders("other") == frozenset()


def test_an_encoder_pickled_before_placeholders_existed_still_loads() -> None:
    encoder = LeadEncoder({"city": "categorical"}).fit(pd.DataFrame({"city": ["Leeds", "York"]}))
    state = encoder.__getstate__()
    del state["missing_values"]
    old = LeadEncoder.__new__(LeadEncoder)
    old.__setstate__(state)
    assert old.placeholders("city") == frozenset()
    assert "LeadEncoder" in repr(old)


def test_placeholders_in_a_parquet_category_column_are_masked() -> None:
    column = pd.Series(["Leeds", "Select", "York", "Select"], dtype="category")
    masked, found = mask_placeholders(column, ["select"])
    assert masked.isna().tolist() == [False, True, False, True]
    assert found == {"Select": 2}


@pytest.mark.parametrize("text", ["Select", "-- Select --", "N/A", "na", "?", "-", "--", "Not specified", "unknown"])
def test_texts_that_say_nothing_was_chosen_look_like_placeholders(text: str) -> None:
    assert looks_like_placeholder(text)


@pytest.mark.parametrize("text", ["Leeds", "Other", "selection", "North America", "1-10", "none of these"])
def test_real_answers_do_not_look_like_placeholders(text: str) -> None:
    assert not looks_like_placeholder(text)


def test_training_suggests_an_undeclared_select_and_acts_on_nothing(leads: pd.DataFrame) -> None:
    table = prepare_leads(leads, UNDECLARED)
    suggested = {(s.field, s.value) for s in table.placeholder_suggestions}
    assert ("city", PLACEHOLDERS["city"]) in suggested
    assert any("possible placeholder: 'city' holds 'Select'" in note for note in table.notes)
    assert (table.features["city"] == "Select").any()  # a suggestion only
    declared = prepare_leads(leads, SAMPLE_SPEC)
    assert "city" not in {s.field for s in declared.placeholder_suggestions}


def test_a_declared_select_never_becomes_a_qualification_question(leads: pd.DataFrame) -> None:
    """Home owners leave the drop-down at Select more often, so undeclared it reads as a best-customer trait."""
    questions = {}
    for name, spec in (("undeclared", UNDECLARED), ("declared", SAMPLE_SPEC)):
        table = prepare_leads(leads, spec)
        profile = profile_best_customers(table.features, table.kinds, pd.Series(table.converted), table.value)
        questions[name] = [f"{t.question} {t.answer}" for t in profile.traits]
    assert "City? Select" in questions["undeclared"]
    assert not any("Select" in q for q in questions["declared"])
    assert "Owns home? Yes" in questions["declared"]


def _default_answer_table(seed: int, default_absorbs: bool, n: int = 20_000) -> tuple[pd.DataFrame, dict, np.ndarray]:
    """Answers convert at 20%, leads who answered nothing at 5%: those either left the form's default (`Leeds`)
    or came in without the field. With ``default_absorbs`` false, the field is blanked at random instead."""
    rng = np.random.default_rng(seed)
    answered = rng.random(n) < 0.6
    converted = rng.random(n) < np.where(answered, 0.20, 0.05)
    city = rng.choice(["York", "Hull", "Bath", "Leeds"], n, p=[0.35, 0.35, 0.25, 0.05]).astype(object)
    if default_absorbs:
        city[~answered] = np.where(rng.random(int((~answered).sum())) < 0.8, "Leeds", None)
    else:
        city = rng.choice(["York", "Hull", "Bath", "Leeds"], n, p=[0.2, 0.2, 0.2, 0.4]).astype(object)
        city[rng.random(n) < 0.2] = None
    return pd.DataFrame({"city": city}), {"city": "categorical"}, converted


def test_a_mode_that_converts_like_the_missing_rows_is_suggested() -> None:
    frame, kinds, converted = _default_answer_table(seed=3, default_absorbs=True)
    (suggestion,) = suggest_placeholders(frame, kinds, converted)
    assert (suggestion.field, suggestion.value) == ("city", "Leeds")
    assert "two one-sided tests" in suggestion.reason


def test_a_mode_beside_values_missing_at_random_is_not_suggested() -> None:
    for seed in range(5):
        frame, kinds, converted = _default_answer_table(seed=seed, default_absorbs=False)
        assert suggest_placeholders(frame, kinds, converted) == []


def test_the_training_summary_suggests_an_undeclared_select(training_env: TrainingEnv, tmp_path: Path) -> None:
    data = tmp_path / "leads.csv"
    generate_leads(n=6_000, seed=4).to_csv(data, index=False)
    spec = tmp_path / "undeclared.yaml"
    write_spec(UNDECLARED, spec)
    result = training_env.cli("train", "--data", str(data), "--spec", str(spec))
    assert result.exit_code == 0, result.output
    summary = result.stdout
    assert "possible placeholders, still used as answers" in summary
    assert "  city = 'Select' (" in summary
    bundle = load_bundle(training_env.models_dir / "champion")
    assert any("possible placeholder: 'city' holds 'Select'" in note for note in bundle.notes)


def test_the_summary_of_a_spec_declaring_select_does_not_suggest_it(trained: Trained) -> None:
    assert "city = 'Select'" not in trained.stdout
    assert any("'city': placeholders treated as missing ('Select' in" in note for note in trained.bundle.notes)
    assert trained.bundle.pipeline["encode"].missing_values == {"city": ["Select"]}
