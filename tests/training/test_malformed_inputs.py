"""A bad training file gets a one-line error naming the column (or the problem), exit code 2, and registers nothing."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from training.cli import app
from training.data import prepare_leads, read_table
from training.settings import get_training_settings
from training.spec import read_spec
from training.synthetic import generate_leads, write_leads

REPO = Path(__file__).resolve().parents[2]
SAMPLE_SPEC = REPO / "data/specs/sample.yaml"

# Builds one malformed input in a folder and returns the arguments after `leadscore train`.
Build = Callable[[Path, pd.DataFrame], list[str]]


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return generate_leads(n=1500, seed=0)


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_training_settings.cache_clear()
    yield
    get_training_settings.cache_clear()


def _csv(folder: Path, table: pd.DataFrame, name: str = "leads.csv") -> Path:
    path = folder / name
    write_leads(table, path)
    return path


def _spec(folder: Path, changes: dict[str, Any] | None = None, without: tuple[str, ...] = ()) -> Path:
    raw = yaml.safe_load(SAMPLE_SPEC.read_text(encoding="utf-8")) | (changes or {})
    for key in without:
        raw.pop(key)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _args(data: Path | str, spec: Path, *extra: str) -> list[str]:
    return ["--data", str(data), "--spec", str(spec), *extra]


def _crm_database(folder: Path, table: pd.DataFrame) -> str:
    url = f"sqlite:///{folder / 'crm.db'}"
    engine = sa.create_engine(url)
    try:
        table.to_sql("leads", engine, index=False)
    finally:
        engine.dispose()
    return url


def _put(table: pd.DataFrame, column: str, rows: slice | list[int], value: object) -> pd.DataFrame:
    """A copy with `value` written into some rows of `column` (which becomes text, as in a CSV)."""
    out = table.copy()
    out[column] = out[column].astype(object)
    out.loc[out.index[rows], column] = value
    return out


def table_case(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Build:
    """The sample spec with a broken table."""

    def build(folder: Path, leads: pd.DataFrame) -> list[str]:
        return _args(_csv(folder, change(leads)), SAMPLE_SPEC)

    return build


def spec_case(changes: dict[str, Any] | None = None, without: tuple[str, ...] = ()) -> Build:
    """The sample table with a broken spec."""

    def build(folder: Path, leads: pd.DataFrame) -> list[str]:
        return _args(_csv(folder, leads), _spec(folder, changes, without))

    return build


def _ten_converted(table: pd.DataFrame) -> pd.DataFrame:
    converted = table.index[table["converted"] == 1]
    return table.drop(index=converted[10:])


def _duplicate_id(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    out.loc[7, "lead_id"] = out.loc[3, "lead_id"]
    return out


def _yes_yes_one(table: pd.DataFrame) -> pd.DataFrame:
    spellings = np.resize(np.array(["yes", "Yes", "1"], dtype=object), len(table))
    return table.assign(converted=np.where(table["converted"] == 1, spellings, "no"))


def _free_text(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(call_notes=[f"called {i} times, left a voicemail" for i in range(len(table))])


def _empty_file(folder: Path, leads: pd.DataFrame) -> list[str]:
    path = folder / "leads.csv"
    path.write_bytes(b"")
    return _args(path, SAMPLE_SPEC)


def _header_only(folder: Path, leads: pd.DataFrame) -> list[str]:
    return _args(_csv(folder, leads.head(0)), SAMPLE_SPEC)


def _semicolons(decimal: str) -> Build:
    def build(folder: Path, leads: pd.DataFrame) -> list[str]:
        path = folder / "leads.csv"
        leads.to_csv(path, sep=";", decimal=decimal, index=False)
        return _args(path, SAMPLE_SPEC)

    return build


def _latin1(folder: Path, leads: pd.DataFrame) -> list[str]:
    path = folder / "leads.csv"
    _put(leads, "full_name", [700], "Renée Novak").to_csv(path, index=False, encoding="latin-1")
    return _args(path, SAMPLE_SPEC)


def _every_feature_excluded(folder: Path, leads: pd.DataFrame) -> list[str]:
    spec = read_spec(SAMPLE_SPEC)
    features = spec.feature_candidates(leads.columns)
    return _args(_csv(folder, leads), _spec(folder, {"exclude": [*spec.exclude, *features]}))


def _only_feature_empty(folder: Path, leads: pd.DataFrame) -> list[str]:
    return _args(_csv(folder, leads.assign(fax=None)), _spec(folder, {"features": ["fax"]}))


def _missing_spec_file(folder: Path, leads: pd.DataFrame) -> list[str]:
    return _args(_csv(folder, leads), folder / "nope.yaml")


def _invalid_yaml(folder: Path, leads: pd.DataFrame) -> list[str]:
    path = folder / "spec.yaml"
    path.write_text("target: [converted\npositive: 1\n", encoding="utf-8")
    return _args(_csv(folder, leads), path)


def _missing_data_file(folder: Path, leads: pd.DataFrame) -> list[str]:
    return _args(folder / "nope.csv", SAMPLE_SPEC)


def _sql(*extra: str) -> Build:
    def build(folder: Path, leads: pd.DataFrame) -> list[str]:
        return _args(_crm_database(folder, leads), SAMPLE_SPEC, *extra)

    return build


def _sqlite_typo(folder: Path, leads: pd.DataFrame) -> list[str]:
    return _args(f"sqlite:///{folder / 'crm-typo.db'}", SAMPLE_SPEC, "--table", "leads")


def _table_with_a_file(folder: Path, leads: pd.DataFrame) -> list[str]:
    return _args(_csv(folder, leads), SAMPLE_SPEC, "--table", "leads")


def _leaky_field_kept(folder: Path, leads: pd.DataFrame) -> list[str]:
    # enough rows for the single-field holdout ROC AUC to be meaningful
    return _args(_csv(folder, generate_leads(n=3000, seed=0)), _spec(folder, {"exclude": []}))


def _corrupt_parquet(folder: Path, leads: pd.DataFrame) -> list[str]:
    path = folder / "leads.parquet"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return _args(path, SAMPLE_SPEC)


def _written(text: str, name: str = "leads.csv") -> Build:
    """A file with exactly these contents and the sample spec."""

    def build(folder: Path, leads: pd.DataFrame) -> list[str]:
        path = folder / name
        path.write_text(text, encoding="utf-8")
        return _args(path, SAMPLE_SPEC)

    return build


def _edited_csv(edit: Callable[[bytes], bytes]) -> Build:
    """The sample table written as CSV, then its bytes edited."""

    def build(folder: Path, leads: pd.DataFrame) -> list[str]:
        path = _csv(folder, leads)
        path.write_bytes(edit(path.read_bytes()))
        return _args(path, SAMPLE_SPEC)

    return build


def _spec_text(text: str) -> Build:
    """The sample table with a spec file holding exactly this text."""

    def build(folder: Path, leads: pd.DataFrame) -> list[str]:
        path = folder / "spec.yaml"
        path.write_text(text, encoding="utf-8")
        return _args(_csv(folder, leads), path)

    return build


def _repeated_header(data: bytes) -> bytes:
    header, rest = data.split(b"\n", 1)
    return header.replace(b"owns_home", b"region", 1) + b"\n" + rest


def _ragged_last_row(data: bytes) -> bytes:
    return data + b",".join([b"x"] * 40) + b"\n"


def _ten_thousand_levels(folder: Path, leads: pd.DataFrame) -> list[str]:
    """A campaign code with 10,000 levels that the spec does not declare categorical."""
    return _args(_csv(folder, _with_campaign_codes(generate_leads(n=12_000, seed=1))), SAMPLE_SPEC)


def _with_campaign_codes(table: pd.DataFrame, levels: int = 10_000) -> pd.DataFrame:
    codes = np.array([f"C{i:05d}" for i in range(levels)], dtype=object)
    picked = np.concatenate([codes, np.random.default_rng(0).choice(codes, len(table) - levels)])
    return table.assign(campaign=picked)


def _nested_parquet(folder: Path, leads: pd.DataFrame) -> list[str]:
    path = folder / "leads.parquet"
    leads.assign(tags=[["webinar", "ebook"]] * len(leads)).to_parquet(path)
    return _args(path, SAMPLE_SPEC)


def _unreachable_database(folder: Path, leads: pd.DataFrame) -> list[str]:
    # port 1 on loopback: nothing listens there, the connection is refused at once
    return _args("postgresql+psycopg://crm:s3cret-pw@127.0.0.1:1/crm", SAMPLE_SPEC, "--table", "leads")


CASES = [
    pytest.param(table_case(lambda t: t.drop(columns="converted")), ["'converted'", "not found"], id="missing-target"),
    pytest.param(
        table_case(lambda t: _put(t, "converted", slice(None, None, 7), 2)),
        ["'converted'", "two values"],
        id="target-not-binary",
    ),
    pytest.param(
        table_case(lambda t: t.assign(converted=0)),
        ["'converted'", "only one value", "both outcomes"],
        id="target-never-converted",
    ),
    pytest.param(
        table_case(lambda t: t.assign(converted=1)),
        ["'converted'", "only one value", "both outcomes"],
        id="target-always-converted",
    ),
    pytest.param(table_case(_ten_converted), ["10 converted", "at least 40 of each"], id="too-few-converted"),
    pytest.param(table_case(_duplicate_id), ["'lead_id'", "duplicate", "'L0000004'"], id="duplicate-ids"),
    pytest.param(_empty_file, ["is empty"], id="empty-file"),
    pytest.param(_header_only, ["no data rows"], id="header-only"),
    pytest.param(_semicolons("."), ["separated by ';'", "--sep ';'"], id="semicolon-separated"),
    pytest.param(_semicolons(","), ["separated by ';'", "--sep ';'"], id="semicolon-separated-decimal-commas"),
    pytest.param(
        spec_case({"exlude": ["account_manager_assigned"]}, without=("exclude",)),
        ["exlude", "unknown key"],
        id="unknown-spec-key",
    ),
    pytest.param(
        spec_case({"exclude": ["account_manager_assigned", "acct_mgr_notes"]}),
        ["'acct_mgr_notes'", "not found"],
        id="exclude-names-missing-column",
    ),
    pytest.param(
        spec_case({"pii": ["full_name", "email", "phone", "ssn"]}),
        ["'ssn'", "not found"],
        id="pii-names-missing-column",
    ),
    pytest.param(_every_feature_excluded, ["no usable feature"], id="every-feature-excluded"),
    pytest.param(_only_feature_empty, ["no usable feature", "'fax'", "empty"], id="only-feature-empty"),
    pytest.param(_latin1, ["not UTF-8", "0xe9", "line 702"], id="latin-1-bytes"),
    pytest.param(table_case(_free_text), ["'call_notes'", "distinct values", "exclude"], id="free-text-column"),
    pytest.param(table_case(_yes_yes_one), ["'converted'", "two values", "'yes'", "'Yes'"], id="target-yes-Yes-1"),
    pytest.param(
        spec_case({"positive": "Yes"}), ["positive value 'Yes' not found", "'converted'"], id="positive-value-absent"
    ),
    pytest.param(
        table_case(lambda t: _put(t, "pages_viewed", slice(None, None, 100), "unknown")),
        ["'pages_viewed'", "non-numeric", "'unknown'"],
        id="numeric-column-with-text",
    ),
    pytest.param(
        table_case(lambda t: _put(t, "created_at", [10, 20, 30], "last tuesday")),
        ["'created_at'", "not dates", "'last tuesday'"],
        id="time-not-dates",
    ),
    pytest.param(_missing_spec_file, ["spec file", "not found"], id="spec-file-missing"),
    pytest.param(_invalid_yaml, ["spec file", "not valid YAML", "on line"], id="spec-invalid-yaml"),
    pytest.param(_missing_data_file, ["data file", "not found"], id="data-file-missing"),
    pytest.param(_sql("--table", "nope"), ["table 'nope' not found", "tables: leads"], id="sql-table-missing"),
    pytest.param(_sql(), ["exactly one of --table", "--query"], id="sql-neither-table-nor-query"),
    pytest.param(_sql("--query", "select * from nope"), ["database query failed", "nope"], id="sql-bad-query"),
    pytest.param(_sqlite_typo, ["SQLite database", "crm-typo.db", "not found"], id="sqlite-path-typo"),
    pytest.param(_table_with_a_file, ["database URL"], id="table-option-with-a-file"),
    pytest.param(_leaky_field_kept, ["account_manager_assigned", "exclude", "allow_leaky"], id="leaky-field-kept"),
    pytest.param(_corrupt_parquet, ["not a readable Parquet file"], id="corrupt-parquet"),
    pytest.param(
        table_case(lambda t: _put(t, "pages_viewed", slice(None, None, 20), "2024-03-05")),
        ["'pages_viewed'", "non-numeric", "'2024-03-05'"],
        id="dates-in-numeric-column",
    ),
    pytest.param(
        table_case(lambda t: _put(t, "stated_budget", slice(None, None, 50), "inf")),
        ["'stated_budget'", "30 infinite values", "'inf'"],
        id="infinity-in-numeric-column",
    ),
    pytest.param(_ten_thousand_levels, ["'campaign'", "10,000 distinct values", "exclude"], id="10k-level-categorical"),
    pytest.param(table_case(lambda t: t.head(1)), ["'converted'", "only one value"], id="one-row"),
    pytest.param(_written("lead_id,converted,owns_home"), ["no data rows"], id="header-only-no-newline"),
    pytest.param(_edited_csv(_repeated_header), ["'region'", "more than once"], id="repeated-column-name"),
    pytest.param(_edited_csv(_ragged_last_row), ["not a well-formed CSV", "line 1502"], id="ragged-row"),
    pytest.param(_edited_csv(gzip.compress), ["not UTF-8", "line 1"], id="gzip-named-csv"),
    pytest.param(_nested_parquet, ["'tags'", "lists or records", "exclude"], id="nested-parquet-column"),
    pytest.param(table_case(lambda t: t.assign(converted=None)), ["'converted'", "empty in every row"], id="no-target"),
    pytest.param(table_case(lambda t: _put(t, "lead_id", [5], None)), ["'lead_id'", "empty in 1 rows"], id="id-gap"),
    pytest.param(
        table_case(lambda t: t.assign(created_at=None)), ["'created_at'", "empty in 1,500 rows"], id="time-all-empty"
    ),
    pytest.param(_spec_text(""), ["a spec must be a mapping"], id="spec-empty"),
    pytest.param(_spec_text("- target\n- converted\n"), ["a spec must be a mapping"], id="spec-a-list"),
    pytest.param(
        spec_case({"grades": {"by": "share", "cuts": {"A": 0.5, "B": 0.2}}}),
        ["grade cuts must be listed best grade first"],
        id="spec-grade-cuts-unordered",
    ),
    pytest.param(spec_case({"positive": [1, "yes"]}), ["positive", "valid string"], id="spec-positive-a-list"),
    pytest.param(_unreachable_database, ["database query failed", "refused"], id="database-unreachable"),
    pytest.param(
        lambda folder, leads: _args("nosuchdb://crm/leads", SAMPLE_SPEC, "--table", "leads"),
        ["cannot use database URL", "nosuchdb"],
        id="unknown-database-dialect",
    ),
]


@pytest.mark.parametrize(("build", "fragments"), CASES)
def test_bad_input_gets_one_line_error_and_registers_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leads: pd.DataFrame, build: Build, fragments: list[str]
) -> None:
    inputs, store = tmp_path / "in", tmp_path / "store"
    inputs.mkdir()
    monkeypatch.chdir(tmp_path)  # a fallback to default paths would show up here too
    args = build(inputs, leads)
    env = {
        "LEADSCORE_MODELS_DIR": str(store / "models"),
        "LEADSCORE_MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
    }

    get_training_settings.cache_clear()
    result = CliRunner().invoke(app, ["train", *args], env=env)
    get_training_settings.cache_clear()

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not an escaped exception
    assert "Traceback" not in result.output
    assert result.stdout == ""  # no summary
    *progress, message = result.stderr.splitlines()
    assert all(line.startswith("[") for line in progress), result.stderr
    assert message.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in message, message
    assert "s3cret-pw" not in result.output  # a database password is never echoed

    assert not (store / "mlflow.db").exists(), "validation failed, yet the MLflow store was created"
    models = store / "models"
    assert not models.exists() or not any(p.is_dir() for p in models.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_all_null_column_is_dropped_with_a_note(tmp_path: Path, leads: pd.DataFrame) -> None:
    raw = read_table(_csv(tmp_path, leads.assign(fax=None)))
    table = prepare_leads(raw, read_spec(SAMPLE_SPEC))
    assert "fax" not in table.features.columns
    assert any("'fax'" in note and "empty" in note for note in table.notes)
    assert "owns_home" in table.kinds


def test_n_a_in_a_numeric_column_reads_as_missing(tmp_path: Path, leads: pd.DataFrame) -> None:
    raw = read_table(_csv(tmp_path, _put(leads, "pages_viewed", slice(None, None, 100), "n/a")))
    table = prepare_leads(raw, read_spec(SAMPLE_SPEC))
    assert table.kinds["pages_viewed"] == "numeric"
    assert table.features["pages_viewed"].isna().sum() == len(range(0, len(leads), 100))


def test_bom_and_crlf_csv_is_accepted(tmp_path: Path, leads: pd.DataFrame) -> None:
    path = tmp_path / "excel.csv"
    text = leads.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S", lineterminator="\r\n")
    path.write_bytes(("\ufeff" + text).encode("utf-8"))
    raw = read_table(path)
    assert raw.columns[0] == "lead_id"
    assert list(raw.columns) == list(leads.columns)
    table = prepare_leads(raw, read_spec(SAMPLE_SPEC))
    assert table.counts == (int(leads["converted"].sum()), int((leads["converted"] == 0).sum()))
    assert table.kinds["owns_home"] == "boolean"
    assert table.ids is not None and table.ids.iloc[-1] == leads["lead_id"].iloc[-1]  # no trailing '\r'


def test_sql_table_and_query_read_the_same_leads(tmp_path: Path, leads: pd.DataFrame) -> None:
    url = _crm_database(tmp_path, leads)
    whole = read_table(url, table="leads")
    assert len(whole) == len(leads)
    assert list(whole.columns) == list(leads.columns)
    converted = read_table(url, query="select * from leads where converted = 1")
    assert len(converted) == int(leads["converted"].sum())
    table = prepare_leads(whole, read_spec(SAMPLE_SPEC))
    assert table.counts[0] == len(converted)


def test_mixed_types_in_a_text_column_are_one_categorical(tmp_path: Path, leads: pd.DataFrame) -> None:
    """Numbers among text labels (a CRM that writes 17 for '11-50') are just more category levels."""
    raw = read_table(_csv(tmp_path, _put(leads, "company_size", slice(None, None, 2), 17)))
    table = prepare_leads(raw, read_spec(SAMPLE_SPEC))
    assert table.kinds["company_size"] == "categorical"
    assert "17" in set(table.features["company_size"].astype(str))


def test_a_10k_level_categorical_declared_in_the_spec_is_accepted(tmp_path: Path) -> None:
    """Declared categorical, a high-cardinality code is the analyst's call: validation keeps all its levels."""
    raw = read_table(_csv(tmp_path, _with_campaign_codes(generate_leads(n=12_000, seed=1))))
    table = prepare_leads(raw, read_spec(SAMPLE_SPEC).model_copy(update={"categorical": ["campaign"]}))
    assert table.kinds["campaign"] == "categorical"
    assert table.features["campaign"].nunique() == 10_000


def test_a_nested_column_the_spec_excludes_is_fine(tmp_path: Path, leads: pd.DataFrame) -> None:
    path = tmp_path / "leads.parquet"
    leads.assign(tags=[["webinar"]] * len(leads)).to_parquet(path)
    spec = read_spec(SAMPLE_SPEC)
    table = prepare_leads(read_table(path), spec.model_copy(update={"exclude": [*spec.exclude, "tags"]}))
    assert "tags" not in table.features.columns
