"""Synthetic leads with a known, documented ground truth: the test bed for models and profiles.

The conversion logit is a sum of the effects in ``GROUND_TRUTH`` (plus ``INTERCEPT``); nothing
else decides who converts. ``data/README.md`` documents the same table, and tests check that
models and profiles recover it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from training.spec import DatasetSpec, FieldWording, GradeSpec, MissingValues, write_spec

INTERCEPT = -5.35  # gives about 11% converted

# Effects on the conversion log-odds. Categorical fields: one effect per level (missing = 0).
# Numeric fields: a coefficient on a stated transform. Fields absent here have no effect.
GROUND_TRUTH: dict[str, dict[str, float] | float] = {
    "owns_home": 1.6,
    "has_children_and_family_product": 0.8,
    "contact_role": {"decision_maker": 1.1, "influencer": 0.4, "researcher": -0.2, "other": -0.5},
    "saboteur_in_group": -1.0,
    "demo_requested": 0.9,
    "log1p_pages_viewed": 0.35,
    "log1p_time_on_site_min": 0.25,
    "email_engagement": 1.0,
    "credit_check": {"passed": 0.5, "pending": 0.0, "failed": -1.2},
    "income_band": {"<30k": -0.4, "30-60k": 0.0, "60-100k": 0.2, "100-150k": 0.35, "150k+": 0.4},
    "stated_budget_log_z": 0.15,
    "purchase_timeframe": {"immediate": 0.9, "1-3 months": 0.4, "3-6 months": 0.0, "6+ months": -0.6},
    "competitor_contract": -0.7,
    "lead_source": {
        "referral": 1.0,
        "partner": 0.4,
        "event": 0.3,
        "web_organic": 0.2,
        "webinar": 0.2,
        "paid_search": 0.0,
        "podcast": 0.0,
        "cold_list": -1.0,
    },
    "days_since_first_contact_per_30d": -0.15,
    "inquiry_type": {"pricing": 0.5, "product_info": 0.2, "partnership": 0.0, "support": -0.4, "other": -0.3},
}
# Fields that carry no signal at all: a model should rank them low.
NOISE_FIELDS = ("region", "company_size", "product_line")
# A web form's drop-down left at its default: `Select` means no city was chosen (see ``_city``).
PLACEHOLDERS = {"city": "Select"}
# Known only after a lead converts; the leakage screen must catch it.
LEAKY_FIELDS = ("account_manager_assigned",)
PII_FIELDS = ("full_name", "email", "phone")
_OUTPUT_FIELDS = (
    "lead_source",
    "region",
    "product_line",
    "company_size",
    "contact_role",
    "saboteur_in_group",
    "income_band",
    "owns_home",
    "has_children",
    "credit_check",
    "stated_budget",
    "pages_viewed",
    "time_on_site_min",
    "demo_requested",
    "email_engagement",
    "inquiry_type",
    "purchase_timeframe",
    "days_since_first_contact",
    "competitor_contract",
    "city",
)

_SOURCES = {
    "web_organic": 0.25,
    "paid_search": 0.22,
    "cold_list": 0.20,
    "referral": 0.10,
    "event": 0.10,
    "partner": 0.08,
    "webinar": 0.045,
    "podcast": 0.005,
}
_REGIONS = {"north": 0.30, "south": 0.25, "west": 0.245, "east": 0.195, "overseas": 0.01}
_PRODUCT_LINES = {"home": 0.35, "family": 0.30, "auto": 0.20, "business": 0.15}
_COMPANY_SIZES = {"1-10": 0.35, "11-50": 0.30, "51-200": 0.20, "201-1000": 0.10, "1000+": 0.05}
_ROLES = {"decision_maker": 0.30, "influencer": 0.30, "researcher": 0.25, "other": 0.15}
_INCOME_BANDS = ["<30k", "30-60k", "60-100k", "100-150k", "150k+"]
_CREDIT = {"passed": 0.65, "pending": 0.20, "failed": 0.15}
_TIMEFRAMES = {"immediate": 0.15, "1-3 months": 0.30, "3-6 months": 0.30, "6+ months": 0.25}
_CITIES = {
    "London": 0.22,
    "Manchester": 0.14,
    "Birmingham": 0.13,
    "Leeds": 0.12,
    "Glasgow": 0.11,
    "Bristol": 0.10,
    "Cardiff": 0.09,
    "Belfast": 0.09,
}
# Leads from these sources fill in a web form whose city drop-down starts at "Select": 40% leave it there, and 70%
# of home owners, whose quote form looks their address up from the postcode. Bought lists always carry a city.
_FORM_SOURCES = ("web_organic", "paid_search", "webinar", "podcast", "referral")
_LEFT_AT_DEFAULT = {"owner": 0.7, "other": 0.4}
_TYPED_SOURCES = ("event", "partner")  # typed in by staff, who leave the city empty for 30% of them
_INQUIRIES = {"product_info": 0.35, "pricing": 0.25, "support": 0.15, "partnership": 0.05, "other": 0.20}
_FIRST = np.array(["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jon", "Kemi", "Lars"])
_LAST = np.array(["Ito", "Novak", "Okafor", "Silva", "Meyer", "Khan", "Larsen", "Moreau", "Rossi", "Park"])
_START = pd.Timestamp("2024-01-01")
_SPAN_DAYS = 610  # about 20 months

SAMPLE_SPEC = DatasetSpec(
    name="sample",
    target="converted",
    positive=1,
    id="lead_id",
    time="created_at",
    value="deal_value",
    exclude=list(LEAKY_FIELDS),
    pii=list(PII_FIELDS),
    grades=GradeSpec(),
    description={
        "account_manager_assigned": "set after the sale: leaks the outcome, excluded (the leakage screen catches it)",
        "deal_value": "revenue of a converted lead; empty otherwise",
    },
    missing_values=MissingValues(fields={name: [value] for name, value in PLACEHOLDERS.items()}),
    fields={
        "lead_source": FieldWording(
            name="lead source",
            askable=False,
            labels={
                "web_organic": "Web search",
                "paid_search": "Paid search ad",
                "cold_list": "Bought list",
                "referral": "Referral",
                "event": "Event",
                "partner": "Partner",
                "webinar": "Webinar",
                "podcast": "Podcast",
            },
        ),
        "region": FieldWording(question="Which region are you in?"),
        "product_line": FieldWording(
            name="product", question="Which product are you interested in?", labels={"auto": "Car"}
        ),
        "company_size": FieldWording(
            question="How many people work at your company?",
            labels={size: f"{size} people" for size in _COMPANY_SIZES},
        ),
        "contact_role": FieldWording(
            name="role in the purchase",
            question="What is your role in the purchase?",
            labels={"decision_maker": "Decision-maker", "other": "Other role"},
        ),
        "saboteur_in_group": FieldWording(
            name="someone in the buying group against it",
            question="Is anyone in the buying group against it?",
        ),
        "income_band": FieldWording(
            name="household income",
            question="What is your household income?",
            labels={
                "<30k": "Under $30k",
                "30-60k": "$30k–60k",
                "60-100k": "$60k–100k",
                "100-150k": "$100k–150k",
                "150k+": "$150k or more",
            },
        ),
        "owns_home": FieldWording(name="home owner", question="Do you own your home?"),
        "has_children": FieldWording(name="children", question="Do you have children?"),
        "credit_check": FieldWording(name="credit check", askable=False),
        "stated_budget": FieldWording(name="budget", question="What budget do you have in mind?", unit="money"),
        "pages_viewed": FieldWording(name="pages viewed on the website", unit="count", askable=False),
        "time_on_site_min": FieldWording(name="time on the website", unit="minutes", askable=False),
        "demo_requested": FieldWording(name="demo", question="Would you like a demo?", actionable=True),
        "email_engagement": FieldWording(name="email open rate", unit="share", askable=False, actionable=True),
        "inquiry_type": FieldWording(
            name="enquiry",
            question="What is your enquiry about?",
            labels={"product_info": "Product information", "support": "Support", "other": "Something else"},
        ),
        "purchase_timeframe": FieldWording(
            name="time frame",
            question="When are you looking to buy?",
            labels={
                "immediate": "Right away",
                "1-3 months": "In 1–3 months",
                "3-6 months": "In 3–6 months",
                "6+ months": "In 6 months or more",
            },
        ),
        "days_since_first_contact": FieldWording(name="time since first contact", unit="days", askable=False),
        "competitor_contract": FieldWording(
            name="contract with a competitor", question="Are you under contract with a competitor?"
        ),
        "city": FieldWording(question="Which city are you in?"),
    },
)


def _pick(rng: np.random.Generator, levels: dict[str, float], n: int) -> np.ndarray:
    names = np.array(list(levels), dtype=object)
    probs = np.array(list(levels.values()))
    return names[rng.choice(len(names), size=n, p=probs / probs.sum())]


def _effect(levels: dict[str, float], values: np.ndarray) -> np.ndarray:
    return pd.Series(values).map(levels).fillna(0.0).to_numpy(dtype=float)


def _blank(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    """Missing at random: CRM fields nobody filled in."""
    out = values.astype(object)
    out[rng.random(len(values)) < share] = None
    return out


def _draw_fields(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw every observable field (before masking) in a fixed order, so a seed fixes the file."""
    f: dict[str, np.ndarray] = {}
    f["created_at"] = _START + pd.to_timedelta(np.floor(rng.random(n) ** 0.8 * _SPAN_DAYS * 86400), unit="s")
    f["lead_source"] = _pick(rng, _SOURCES, n)
    f["region"] = _pick(rng, _REGIONS, n)
    f["product_line"] = _pick(rng, _PRODUCT_LINES, n)
    f["company_size"] = np.where(f["product_line"] == "business", _pick(rng, _COMPANY_SIZES, n), None)
    f["contact_role"] = _pick(rng, _ROLES, n)
    f["saboteur_in_group"] = rng.random(n) < np.where(f["product_line"] == "business", 0.25, 0.08)
    income_idx = rng.choice(5, size=n, p=[0.18, 0.30, 0.27, 0.15, 0.10])
    f["income_band"] = np.array(_INCOME_BANDS, dtype=object)[income_idx]
    f["owns_home"] = rng.random(n) < 0.12 + 0.09 * income_idx
    f["has_children"] = rng.random(n) < 0.40
    f["credit_check"] = _pick(rng, _CREDIT, n)
    f["stated_budget"] = np.round(np.exp(rng.normal(8.5 + 0.25 * income_idx, 1.0)), -1)
    interest = rng.normal(0, 1, n)  # drives engagement fields only; the outcome uses the fields
    f["pages_viewed"] = rng.negative_binomial(2, 2 / (2 + np.exp(1.5 + 0.5 * interest)))
    f["time_on_site_min"] = np.round(np.exp(rng.normal(1.2 + 0.6 * interest, 0.9)), 1)
    f["demo_requested"] = rng.random(n) < 1 / (1 + np.exp(-(-1.6 + 0.9 * interest)))
    f["email_engagement"] = np.round(rng.beta(2 + np.clip(interest, -1.5, None) + 1.5, 4), 3)
    f["inquiry_type"] = _pick(rng, _INQUIRIES, n)
    f["purchase_timeframe"] = _pick(rng, _TIMEFRAMES, n)
    f["days_since_first_contact"] = np.floor(rng.exponential(35, n)).astype(int)
    f["competitor_contract"] = rng.random(n) < 0.25
    return f


def _city(seed: int, lead_source: np.ndarray, owns_home: np.ndarray) -> np.ndarray:
    """No effect on conversion: a city, the form's default `Select`, or empty, depending on how the lead came in.

    Home owners leave `Select` more often, so without the spec's missing_values it looks like a trait of the
    best customers. Drawn from a stream of its own, so adding it left every other column of a seed's table as it was.
    """
    rng = np.random.default_rng([seed, 1])
    n = len(lead_source)
    city = _pick(rng, _CITIES, n)
    share = np.where(owns_home, _LEFT_AT_DEFAULT["owner"], _LEFT_AT_DEFAULT["other"])
    left_at_default = np.isin(lead_source, _FORM_SOURCES) & (rng.random(n) < share)
    left_empty = np.isin(lead_source, _TYPED_SOURCES) & (rng.random(n) < 0.3)
    city[left_at_default] = PLACEHOLDERS["city"]
    city[left_empty] = None
    return city


def true_logit(fields: dict[str, np.ndarray]) -> np.ndarray:
    """The ground-truth conversion log-odds of each lead, from the unmasked fields."""
    g = GROUND_TRUTH
    budget_z = (np.log(fields["stated_budget"].astype(float)) - 9.0) / 1.0
    family = (fields["has_children"]) & (fields["product_line"] == "family")
    return (
        INTERCEPT
        + g["owns_home"] * fields["owns_home"]
        + g["has_children_and_family_product"] * family
        + _effect(g["contact_role"], fields["contact_role"])
        + g["saboteur_in_group"] * fields["saboteur_in_group"]
        + g["demo_requested"] * fields["demo_requested"]
        + g["log1p_pages_viewed"] * np.log1p(fields["pages_viewed"])
        + g["log1p_time_on_site_min"] * np.log1p(fields["time_on_site_min"])
        + g["email_engagement"] * fields["email_engagement"]
        + _effect(g["credit_check"], fields["credit_check"])
        + _effect(g["income_band"], fields["income_band"])
        + g["stated_budget_log_z"] * budget_z
        + _effect(g["purchase_timeframe"], fields["purchase_timeframe"])
        + g["competitor_contract"] * fields["competitor_contract"]
        + _effect(g["lead_source"], fields["lead_source"])
        + g["days_since_first_contact_per_30d"] * fields["days_since_first_contact"] / 30
        + _effect(g["inquiry_type"], fields["inquiry_type"])
    )


def _deal_value(rng: np.random.Generator, fields: dict[str, np.ndarray], converted: np.ndarray) -> np.ndarray:
    """Revenue of converted leads: home owners and larger budgets buy bigger policies."""
    base = pd.Series(fields["product_line"]).map({"home": 1800, "family": 1500, "auto": 900, "business": 4000})
    size = base.to_numpy(float) * np.where(fields["owns_home"], 1.8, 1.0)
    size *= np.exp(0.2 * (np.log(fields["stated_budget"].astype(float)) - 9.0) + rng.normal(0, 0.5, len(size)))
    return np.where(converted, np.round(size, 2), np.nan)


def _pii(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    first = _FIRST[rng.integers(0, len(_FIRST), n)]
    last = _LAST[rng.integers(0, len(_LAST), n)]
    number = rng.integers(0, 10_000_000, n).astype(str)
    full_name = np.char.add(np.char.add(first, " "), last).astype(object)
    email = np.char.add(np.char.add(np.char.lower(first), "."), np.char.add(number, "@example.com")).astype(object)
    phone = np.char.add("+1-555-", np.char.zfill(number, 7)).astype(object)
    return {"full_name": full_name, "email": email, "phone": phone}


def generate_leads(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """A lead table with planted drivers, a leaky field, PII and realistic mess; same seed, same table."""
    if n < 1:
        raise ValueError("n must be at least 1")
    rng = np.random.default_rng(seed)
    fields = _draw_fields(rng, n)
    converted = rng.random(n) < 1 / (1 + np.exp(-true_logit(fields)))
    leaky = rng.random(n) < np.where(converted, 0.93, 0.03)
    deal_value = _deal_value(rng, fields, converted)
    pii = _pii(rng, n)

    masked = dict(fields)
    masked["income_band"] = _blank(rng, fields["income_band"], 0.08)
    masked["stated_budget"] = _blank(rng, fields["stated_budget"], 0.35)
    masked["time_on_site_min"] = _blank(rng, fields["time_on_site_min"], 0.05)
    masked["email_engagement"] = _blank(rng, fields["email_engagement"], 0.10)
    masked["purchase_timeframe"] = _blank(rng, fields["purchase_timeframe"], 0.15)
    masked["credit_check"] = _blank(rng, fields["credit_check"], 0.04)
    masked["city"] = _city(seed, fields["lead_source"], fields["owns_home"])

    order = np.argsort(fields["created_at"].to_numpy(), kind="stable")
    table = pd.DataFrame(
        {
            "lead_id": [f"L{i:07d}" for i in range(1, n + 1)],
            "created_at": fields["created_at"].to_numpy()[order],
            **{k: v[order] for k, v in pii.items()},
            **{k: np.asarray(masked[k])[order] for k in _OUTPUT_FIELDS},
            "account_manager_assigned": leaky[order],
            "converted": converted[order].astype(int),
            "deal_value": deal_value[order],
        }
    )
    for col in ("stated_budget", "time_on_site_min", "email_engagement"):
        table[col] = pd.to_numeric(table[col])
    return table


SPEC_HEADER = (
    "# Dataset spec for the generated sample leads (leadscore generate).\n"
    "# account_manager_assigned is set only after a sale: remove it from `exclude` and the\n"
    "# leakage screen stops training. deal_value is the value column, never a feature.\n"
    "# city is a web form's drop-down whose default, Select, means no city was chosen: missing_values.\n"
)


def write_leads(table: pd.DataFrame, out: Path) -> None:
    """Write CSV or Parquet by extension; the bytes depend only on the table."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        table.to_parquet(out, index=False)
    elif out.suffix == ".csv":
        table.to_csv(out, index=False, date_format="%Y-%m-%dT%H:%M:%S", lineterminator="\n")
    else:
        raise ValueError(f"unsupported output {out.name}: use a .csv or .parquet file name")


def spec_path_for(out: Path) -> Path:
    """Where the spec of a generated file goes: beside it, as <stem>.spec.yaml."""
    return out.with_name(out.stem + ".spec.yaml")


def write_sample(out: Path, rows: int, seed: int) -> Path:
    """Generate leads and write them with their spec; returns the spec's path."""
    write_leads(generate_leads(rows, seed), out)
    spec_out = spec_path_for(out)
    write_spec(SAMPLE_SPEC, spec_out, header=SPEC_HEADER)
    return spec_out
