"""Reading a lead table from a file or a database, and validating it against its dataset spec."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from training.errors import LeadscoreError
from training.placeholders import PlaceholderSuggestion, mask_placeholders, suggest_placeholders
from training.spec import DatasetSpec, check_spec_columns

FieldKind = Literal["numeric", "boolean", "categorical"]

TRUE_WORDS = frozenset({"true", "yes", "y", "t", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "no", "n", "f", "0", "0.0"})
MAX_CATEGORY_LEVELS = 5_000
_DELIMITERS = ",;\t|"


@dataclass
class LeadTable:
    """A validated lead table: features with their kinds, the outcome, and what was noticed on the way."""

    spec: DatasetSpec
    features: pd.DataFrame
    kinds: dict[str, FieldKind]
    converted: np.ndarray
    ids: pd.Series | None = None
    time: pd.Series | None = None
    value: pd.Series | None = None
    notes: list[str] = field(default_factory=list)
    placeholder_suggestions: list[PlaceholderSuggestion] = field(default_factory=list)

    @property
    def missing_values(self) -> dict[str, list[str]]:
        """The spec's placeholders per feature, for the encoder to treat as missing when scoring too."""
        return self.spec.missing_values_for(self.kinds)

    @property
    def counts(self) -> tuple[int, int]:
        """(converted, not converted)."""
        positives = int(self.converted.sum())
        return positives, len(self.converted) - positives


def is_database_url(data: str | Path) -> bool:
    """SQLAlchemy URLs look like 'dialect://...' or 'dialect+driver://...'."""
    return re.match(r"^[a-z][a-z0-9+]*://", str(data)) is not None


def read_table(data: str | Path, table: str | None = None, query: str | None = None, sep: str = ",") -> pd.DataFrame:
    """Read CSV, Parquet, or a SQL table/query into a DataFrame; failures become one-line errors."""
    if is_database_url(data):
        return _read_sql(str(data), table, query)
    if table or query:
        raise LeadscoreError("--table and --query need --data to be a database URL such as sqlite:///crm.db")
    path = Path(data)
    if not path.is_file():
        raise LeadscoreError(f"data file {path} not found")
    if path.suffix == ".parquet":
        return _read_parquet(path)
    return _read_csv(path, sep)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise LeadscoreError(f"{path} is not a readable Parquet file ({type(exc).__name__})") from None


def _read_csv(path: Path, sep: str) -> pd.DataFrame:
    _refuse_non_utf8(path)
    try:
        frame = pd.read_csv(path, sep=sep, encoding="utf-8-sig", low_memory=False)
    except pd.errors.EmptyDataError:
        raise LeadscoreError(f"{path} is empty: a lead table needs a header row and data rows") from None
    except pd.errors.ParserError as exc:
        # a ';'-separated file with decimal commas fails to parse instead of reading as one column
        refuse_wrong_delimiter(path, first_line(path), sep)
        detail = str(exc).strip().splitlines()[-1]
        raise LeadscoreError(f"{path} is not a well-formed CSV file: {detail}") from None
    if frame.shape[1] == 1:
        refuse_wrong_delimiter(path, str(frame.columns[0]), sep)
    _refuse_duplicate_header(path, sep)
    return frame


def _refuse_duplicate_header(path: Path, sep: str) -> None:
    """pandas renames a repeated CSV column to 'name.1', which would train on it silently; refuse it instead."""
    header = next(csv.reader([first_line(path)], delimiter=sep), [])
    names = [name.strip() for name in header]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise LeadscoreError(
            f"{path}: column name(s) {', '.join(map(repr, repeated))} appear more than once in the header; rename them"
        )


def first_line(path: Path) -> str:
    with path.open(encoding="utf-8-sig") as handle:
        return handle.readline().rstrip("\r\n")


def _refuse_non_utf8(path: Path) -> None:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = line[exc.start : exc.start + 1].hex()
                raise LeadscoreError(
                    f"{path} is not UTF-8 (byte 0x{bad} on line {number}); re-save the file as UTF-8"
                ) from None


def refuse_wrong_delimiter(path: Path, header: str, sep: str) -> None:
    """A header that csv.Sniffer reads as separated by another of , ; tab | is refused, naming the --sep to pass."""
    if sep in header:
        return
    try:
        found = csv.Sniffer().sniff(header, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return
    if found != sep:
        raise LeadscoreError(f"{path} looks separated by {found!r}, not {sep!r}; pass --sep {found!r}")


def _read_sql(url: str, table: str | None, query: str | None) -> pd.DataFrame:
    import sqlalchemy as sa

    if bool(table) == bool(query):
        raise LeadscoreError("with a database URL, pass exactly one of --table NAME or --query 'SELECT ...'")
    _refuse_missing_sqlite_file(url)
    try:
        engine = sa.create_engine(url)
    except Exception as exc:
        raise LeadscoreError(f"cannot use database URL {redact_passwords(url)}: {exc}") from None
    try:
        with engine.connect() as conn:
            if table:
                names = sa.inspect(conn).get_table_names()
                if table not in names:
                    shown = ", ".join(names) or "none"
                    raise LeadscoreError(f"table {table!r} not found in {redact_passwords(url)}; tables: {shown}")
                return pd.read_sql_table(table, conn)
            return pd.read_sql_query(sa.text(query), conn)
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        # pandas wraps a failed query's SQLAlchemy error in its own DatabaseError
        cause = exc.__cause__ if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ else exc
        first = str(getattr(cause, "orig", None) or cause).splitlines()[0]
        raise LeadscoreError(f"database query failed: {first}") from None
    finally:
        engine.dispose()


def _refuse_missing_sqlite_file(url: str) -> None:
    """SQLite would silently create an empty database for a mistyped path."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        database = Path(url.removeprefix("sqlite:///").split("?")[0])
        if not database.is_file():
            raise LeadscoreError(f"SQLite database {database} not found")


def redact_passwords(text: str) -> str:
    """Never echo a database password: every user:password@ in URLs within the text becomes user:***@."""
    return re.sub(r"://([^:/@\s]+):[^@\s]*@", r"://\1:***@", text)


def prepare_leads(raw: pd.DataFrame, spec: DatasetSpec, min_per_class: int = 40) -> LeadTable:
    """Validate a raw table against the spec and infer each feature's kind."""
    if raw.empty or raw.shape[1] == 0:
        raise LeadscoreError("the lead table has no data rows")
    raw = raw.rename(columns=lambda c: str(c).strip())
    _refuse_duplicate_columns(raw)
    check_spec_columns(spec, raw.columns)
    _refuse_nested_values(raw, spec)
    notes: list[str] = []
    raw = _declared_placeholders_as_missing(raw, spec, notes)
    raw = _drop_unlabelled(raw, spec, notes)
    converted = positive_mask(raw[spec.target], spec.positive, spec.target)
    check_readiness(converted, min_per_class)
    ids = _checked_ids(raw, spec)
    time = _parsed_time(raw, spec)
    features, kinds = infer_features(raw[spec.feature_candidates(raw.columns)], spec, notes)
    value = pd.to_numeric(raw[spec.value], errors="coerce") if spec.value else None
    suggestions = suggest_placeholders(features, kinds, converted)
    notes += [f"possible placeholder: {suggestion.describe()}" for suggestion in suggestions]
    return LeadTable(spec, features, kinds, converted, ids, time, value, notes, suggestions)


def _declared_placeholders_as_missing(raw: pd.DataFrame, spec: DatasetSpec, notes: list[str]) -> pd.DataFrame:
    """The spec's placeholders become missing before anything else looks at a feature, kind inference included."""
    declared = spec.missing_values_for(spec.feature_candidates(raw.columns))
    if not declared:
        return raw
    raw = raw.copy()
    for name, values in declared.items():
        raw[name], found = mask_placeholders(raw[name], values)
        if found:
            counted = ", ".join(f"{value!r} in {count:,} leads" for value, count in found.items())
            notes.append(f"{name!r}: placeholders treated as missing ({counted}), as the spec's missing_values says")
    return raw


def _refuse_duplicate_columns(raw: pd.DataFrame) -> None:
    dupes = raw.columns[raw.columns.duplicated()].unique().tolist()
    if dupes:
        raise LeadscoreError(f"column name(s) {', '.join(map(repr, dupes))} appear more than once; rename them")


def _refuse_nested_values(raw: pd.DataFrame, spec: DatasetSpec) -> None:
    """Lists and records (Parquet, SQL JSON columns) are not one value per lead; only excluded columns may hold them."""
    ignored = set(spec.exclude) | set(spec.pii)
    for name in raw.columns:
        column = raw[name]
        if name in ignored or column.dtype != object:
            continue
        nested = column.map(lambda value: isinstance(value, list | tuple | dict | set | np.ndarray))
        if nested.any():
            raise LeadscoreError(
                f"column {name!r} holds lists or records in {int(nested.sum()):,} rows, not one value per lead; "
                f"flatten it into separate columns, or add it to the spec's exclude list"
            )


def _drop_unlabelled(raw: pd.DataFrame, spec: DatasetSpec, notes: list[str]) -> pd.DataFrame:
    unlabelled = raw[spec.target].isna()
    if unlabelled.all():
        raise LeadscoreError(f"target column {spec.target!r} is empty in every row")
    if unlabelled.any():
        notes.append(f"dropped {int(unlabelled.sum()):,} rows with no value in target {spec.target!r}")
        raw = raw.loc[~unlabelled].reset_index(drop=True)
    return raw


def positive_mask(target: pd.Series, positive: str | int | bool, name: str) -> np.ndarray:
    """True where the target equals the spec's positive value; the target must have exactly two values."""
    levels = target.drop_duplicates().tolist()
    shown = ", ".join(repr(v) for v in levels[:6]) + (", ..." if len(levels) > 6 else "")
    if len(levels) > 2:
        raise LeadscoreError(f"target {name!r} must have exactly two values; found {len(levels)}: {shown}")
    mask = _equals_positive(target, positive)
    if len(levels) < 2 or mask.all():
        raise LeadscoreError(f"target {name!r} has only one value ({shown}); a model needs leads of both outcomes")
    if not mask.any():
        raise LeadscoreError(f"positive value {positive!r} not found in target {name!r}; its values: {shown}")
    return mask


def _equals_positive(target: pd.Series, positive: str | int | bool) -> np.ndarray:
    if pd.api.types.is_bool_dtype(target) or isinstance(positive, bool):
        return target.map(_as_bool).eq(_as_bool(positive)).to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(target):
        number = pd.to_numeric(pd.Series([positive]), errors="coerce").iloc[0]
        return (target.to_numpy(dtype=float) == number) if pd.notna(number) else np.zeros(len(target), bool)
    return (target.astype(str).str.strip() == str(positive)).to_numpy(dtype=bool)


def _as_bool(value: object) -> bool | None:
    text = str(value).strip().lower()
    return True if text in TRUE_WORDS else False if text in FALSE_WORDS else None


def check_readiness(converted: np.ndarray, min_per_class: int) -> None:
    """Refuse to train on too few examples of either outcome, as the big CRMs do."""
    positives = int(converted.sum())
    negatives = len(converted) - positives
    if positives < min_per_class or negatives < min_per_class:
        raise LeadscoreError(
            f"not enough history: {positives} converted and {negatives} not converted leads; "
            f"at least {min_per_class} of each are needed (set --min-per-class to change)"
        )


def _checked_ids(raw: pd.DataFrame, spec: DatasetSpec) -> pd.Series | None:
    if not spec.id:
        return None
    ids = raw[spec.id]
    if ids.isna().any():
        raise LeadscoreError(f"id column {spec.id!r} is empty in {int(ids.isna().sum()):,} rows; ids must be set")
    dupes = ids[ids.duplicated()]
    if len(dupes):
        raise LeadscoreError(
            f"id column {spec.id!r} has {len(dupes):,} duplicate values (e.g. {dupes.iloc[0]!r}); ids must be unique"
        )
    return ids.astype(str).reset_index(drop=True)


def _parsed_time(raw: pd.DataFrame, spec: DatasetSpec) -> pd.Series | None:
    if not spec.time:
        return None
    column = raw[spec.time]
    parsed = column if pd.api.types.is_datetime64_any_dtype(column) else _to_datetime(column)
    bad = parsed.isna() & column.notna()
    if bad.any():
        raise LeadscoreError(
            f"time column {spec.time!r} has {int(bad.sum()):,} values that are not dates "
            f"(e.g. {column[bad].iloc[0]!r}); use ISO dates such as 2025-03-31T14:05:00"
        )
    if parsed.isna().any():
        raise LeadscoreError(f"time column {spec.time!r} is empty in {int(parsed.isna().sum()):,} rows")
    return parsed.reset_index(drop=True)


def _to_datetime(column: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(column, errors="coerce", format="ISO8601", utc=True)
    return parsed.dt.tz_localize(None)


def infer_features(
    frame: pd.DataFrame, spec: DatasetSpec, notes: list[str]
) -> tuple[pd.DataFrame, dict[str, FieldKind]]:
    """Infer numeric / boolean / categorical per column; drop empty, constant and date columns with a note."""
    kinds: dict[str, FieldKind] = {}
    first_note = len(notes)
    for name in frame.columns:
        column = frame[name]
        kind = _infer_kind(name, column, spec)
        if kind is None:
            notes.append(f"excluded {name!r}: a date/time column (derive a numeric field such as days-since instead)")
        elif column.nunique(dropna=True) == 0:
            notes.append(f"dropped {name!r}: empty in every row")
        elif column.nunique(dropna=True) == 1:
            notes.append(f"dropped {name!r}: holds a single value")
        else:
            if kind == "numeric":
                _refuse_infinite(name, column)
            kinds[name] = kind
    if not kinds:
        dropped = "".join(f"; {note}" for note in notes[first_note:])
        raise LeadscoreError(f"no usable feature columns remain; check the spec's features and exclude lists{dropped}")
    return frame[list(kinds)].reset_index(drop=True), kinds


def _refuse_infinite(name: str, column: pd.Series) -> None:
    """The service refuses infinity in a lead, so training must not learn from it either (pandas reads 'inf')."""
    numbers = pd.to_numeric(column, errors="coerce")
    infinite = np.isinf(numbers.to_numpy(dtype=float, na_value=np.nan))
    if infinite.any():
        raise LeadscoreError(
            f"column {name!r} has {int(infinite.sum()):,} infinite values (e.g. {str(column[infinite].iloc[0])!r}); "
            f"use a number, or leave the cell empty when it is unknown"
        )


def _infer_kind(name: str, column: pd.Series, spec: DatasetSpec) -> FieldKind | None:
    if name in spec.categorical:
        return "categorical"
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(column):
        return None
    if pd.api.types.is_numeric_dtype(column):
        return "boolean" if set(column.dropna().unique()) <= {0, 1} and column.nunique() == 2 else "numeric"
    values = column.dropna().astype(str).str.strip()
    if values.empty:
        return "categorical"
    if values.str.lower().isin(TRUE_WORDS | FALSE_WORDS).all() and values.nunique() <= 4:
        return "boolean"
    return _text_kind(name, values)


def _text_kind(name: str, values: pd.Series) -> FieldKind | None:
    numbers = pd.to_numeric(values, errors="coerce")
    parsed = numbers.notna().mean()
    if parsed == 1.0:
        return "numeric"
    if parsed >= 0.9:
        bad = values[numbers.isna()]
        raise LeadscoreError(
            f"column {name!r} is mostly numeric but has {len(bad):,} non-numeric values (e.g. {bad.iloc[0]!r}); "
            f"clean them, declare them under the spec's missing_values if they mean 'not answered', "
            f"or list the column under the spec's categorical"
        )
    if _looks_like_dates(values):
        return None
    _refuse_identifier_like(name, values)
    return "categorical"


def _looks_like_dates(values: pd.Series) -> bool:
    sample = values.head(200)
    if not sample.str.contains(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}", regex=True).all():
        return False
    return pd.to_datetime(sample, errors="coerce", format="mixed").notna().all()


def _refuse_identifier_like(name: str, values: pd.Series) -> None:
    levels = values.nunique()
    if levels > MAX_CATEGORY_LEVELS or (levels > 50 and levels > 0.5 * len(values)):
        raise LeadscoreError(
            f"column {name!r} has {levels:,} distinct values in {len(values):,} rows: it looks like an id or "
            f"free text; add it to the spec's exclude list"
        )
