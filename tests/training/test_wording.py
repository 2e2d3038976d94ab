"""Fields in a person's words: the spec's wording where given, humanised defaults elsewhere, kept in the bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_SPEC, Trained
from training.bundle import load_bundle, save_bundle
from training.errors import LeadscoreError
from training.spec import parse_spec, read_spec
from training.wording import Wording, formatted_number, humanised

KINDS = {
    "contact_role": "categorical",
    "owns_home": "boolean",
    "stated_budget": "numeric",
    "time_on_site_min": "numeric",
    "email_engagement": "numeric",
    "MHKOOP": "numeric",
    "nr.employed": "numeric",
}


def wording(fields: dict | None = None, time_proxies: dict[str, float] | None = None) -> Wording:
    spec = parse_spec({"target": "y", "fields": fields or {}})
    return Wording.from_spec(spec, KINDS, time_proxies)


def test_defaults_humanise_names_and_ask_each_field_as_a_short_question() -> None:
    plain = wording()
    assert plain.field_name("contact_role") == "contact role"
    assert plain.question("contact_role") == "Contact role?"
    assert plain.question("owns_home") == "Owns home?"
    assert plain.field_name("MHKOOP") == "MHKOOP"
    assert humanised("LeadSource") == "lead source"
    assert humanised("nr.employed") == "nr employed"


def test_default_labels_read_like_words() -> None:
    plain = wording()
    assert plain.label("contact_role", "decision_maker") == "Decision maker"
    assert plain.label("owns_home", True) == "Yes"
    assert plain.label("owns_home", "no") == "No"
    assert plain.label("owns_home", 1) == "Yes"
    assert plain.label("stated_budget", 18280.0) == "18,300"
    assert plain.label("contact_role", None) == "not answered"
    assert plain.label("stated_budget", float("nan")) == "not answered"


def test_the_spec_wording_wins_over_the_defaults() -> None:
    spoken = wording(
        {
            "owns_home": {"question": "Do you own your home?", "name": "home owner", "labels": {True: "Owns"}},
            "contact_role": {"labels": {"decision_maker": "Decision-maker"}},
            "stated_budget": {"unit": "money", "currency": "£"},
            "time_on_site_min": {"unit": "minutes", "name": "time on the website"},
            "email_engagement": {"unit": "share"},
            "MHKOOP": {"labels": {5: "50–62% own their home"}},
        }
    )
    assert spoken.question("owns_home") == "Do you own your home?"
    assert spoken.field_name("owns_home") == "home owner"
    assert spoken.label("owns_home", "true") == "Owns"
    assert spoken.label("owns_home", False) == "No"  # no label for it: the default
    assert spoken.label("contact_role", "decision_maker") == "Decision-maker"
    assert spoken.label("contact_role", "influencer") == "Influencer"
    assert spoken.label("stated_budget", 18280) == "£18,300"
    assert spoken.label("time_on_site_min", 12.4) == "12 minutes"
    assert spoken.label("time_on_site_min", 1.0) == "1 minute"
    assert spoken.label("email_engagement", 0.347) == "35%"
    assert spoken.label("MHKOOP", 5.0) == "50–62% own their home"
    assert spoken.label("MHKOOP", 4) == "4"
    assert spoken.question("time_on_site_min") == "Time on the website?"


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (18280, "money", "$18,300"),
        (382100, "money", "$382,000"),
        (-1234.5, "money", "-$1,230"),
        (42.6, None, "43"),
        (3.25, None, "3.2"),
        (3.0, None, "3"),
        (0.0349, None, "0.035"),
        (1_234_567, "count", "1,234,567"),
        (7.6, "count", "8"),
        (2.5, "days", "2.5 days"),
        (12.0, "percent", "12%"),
        (0.5, "share", "50%"),
    ],
)
def test_numbers_are_rounded_separated_and_carry_their_unit(value: float, unit: str | None, expected: str) -> None:
    assert formatted_number(value, unit) == expected


def test_askable_and_actionable_follow_the_spec_and_the_time_proxies() -> None:
    rules = wording(
        {"stated_budget": {"askable": False}, "owns_home": {"actionable": True}, "MHKOOP": {"askable": True}},
        time_proxies={"nr.employed": 0.97, "MHKOOP": 0.95},
    )
    assert rules.askable("contact_role") and rules.askable("owns_home")
    assert not rules.askable("stated_budget")
    assert not rules.askable("nr.employed")  # describes when, not who
    assert rules.askable("MHKOOP")  # the spec says so, which wins over the time-proxy rule
    assert not rules.askable("not_a_model_field")
    assert rules.actionable("owns_home") and not rules.actionable("contact_role")
    assert rules.actionable_fields() == ["owns_home"]
    assert "nr.employed" not in rules.askable_fields()
    assert rules.to_dict()["nr.employed"]["time_proxy"] is True


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"owns_home": {"unit": "dollars"}}, r"fields\.owns_home\.unit: unknown unit 'dollars' \(allowed: money"),
        ({"owns_home": {"qestion": "Own?"}}, r"fields\.owns_home\.qestion: unknown key \(allowed: name, question"),
        ({"owns_home": {"question": ""}}, r"fields\.owns_home\.question: "),
        ({"owns_home": {"labels": {True: True}}}, r"fields\.owns_home\.labels: label of 'true' is not text: quote it"),
        ({"owns_home": {"labels": ["Yes"]}}, r"fields\.owns_home\.labels: must be a mapping of value to label"),
        ({"owns_home": {"askable": "maybe"}}, r"fields\.owns_home\.askable: "),
        ({"owns_home": {"currency": "£"}}, r"fields\.owns_home: currency is only for unit: money"),
        ({"y": {"question": "Converted?"}}, r"fields names 'y', the spec's target"),
    ],
)
def test_a_wrong_wording_key_is_one_line_naming_the_field_and_key(fields: dict, message: str) -> None:
    with pytest.raises(LeadscoreError, match=message) as raised:
        parse_spec({"target": "y", "fields": fields})
    assert "\n" not in str(raised.value)


def test_the_sample_spec_words_its_fields() -> None:
    spec = read_spec(SAMPLE_SPEC)
    words = Wording.from_spec(spec, {"owns_home": "boolean", "stated_budget": "numeric", "pages_viewed": "numeric"})
    assert words.question("owns_home") == "Do you own your home?"
    assert words.label("stated_budget", 18280) == "$18,300"
    assert not words.askable("pages_viewed")


def test_a_trained_bundle_carries_the_spec_wording(trained: Trained) -> None:
    words = trained.bundle.wording
    assert words is not None
    assert words.question("owns_home") == "Do you own your home?"
    assert words.label("contact_role", "decision_maker") == "Decision-maker"
    assert set(words.actionable_fields()) == {"demo_requested", "email_engagement"}
    assert load_bundle(trained.bundle_dir).wording == words


def test_a_bundle_written_before_wording_loads_with_defaults_from_its_spec(trained: Trained, tmp_path: Path) -> None:
    old = load_bundle(trained.bundle_dir)
    del old.__dict__["wording"]  # what unpickling a bundle written before the field existed gives
    old.spec = {key: value for key, value in old.spec.items() if key != "fields"}
    target = tmp_path / old.version
    save_bundle(old, target)
    loaded = load_bundle(target)
    assert loaded.wording is not None
    assert loaded.wording.question("owns_home") == "Owns home?"
    assert loaded.wording.label("contact_role", "decision_maker") == "Decision maker"
    assert loaded.wording.askable("owns_home") and not loaded.wording.actionable("demo_requested")
    shutil.rmtree(target)
