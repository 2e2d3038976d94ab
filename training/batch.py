"""Scoring whole files in chunks, so a table far larger than memory streams through."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from training.bundle import Bundle
from training.data import first_line, is_database_url, refuse_wrong_delimiter
from training.engine import ServingEngine, serving_engine
from training.errors import LeadscoreError
from training.grades import assign_grades
from training.reference import percentile

DEFAULT_CHUNK_ROWS = 100_000
# Compiling the trees takes seconds the first time (then it is cached) and saves ~4-8 µs a lead.
COMPILE_FROM_ROWS = 400_000


SCORE_COLUMNS = ("probability", "grade", "percentile")
# More than this share of the model's fields absent from a file means it is not the table the model expects.
MAX_MISSING_SHARE = 0.5


@dataclass(frozen=True)
class BatchReport:
    rows: int
    chunks: int
    out: Path
    id_column: str | None = None
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnPlan:
    """How a file's columns meet the model: renames that undo case and spaces, the columns the output carries
    (the id first) and the model's fields the file lacks."""

    renames: dict[str, str]
    carried: tuple[str, ...]
    id_column: str | None
    missing: tuple[str, ...]


def column_key(name: object) -> str:
    """Column names are matched ignoring case and surrounding spaces: `Lead_Source ` is `lead_source`."""
    return str(name).strip().casefold()


def plan_columns(
    columns: list[str], bundle: Bundle, data: Path, id_column: str | None = None, keep: tuple[str, ...] = ()
) -> ColumnPlan:
    """Match a file's header to the model's fields; refuse a file that holds too few of them."""
    by_key = {column_key(name): name for name in columns}
    fields = bundle.fields
    missing = tuple(name for name in fields if column_key(name) not in by_key)
    if len(missing) > MAX_MISSING_SHARE * len(fields):
        raise LeadscoreError(_missing_fields_message(data, fields, missing, columns))
    renames = {by_key[column_key(name)]: name for name in fields if column_key(name) in by_key}
    found_id = _id_column(by_key, bundle, data, id_column)
    kept = tuple(_named_column(by_key, name, data, "--keep") for name in keep)
    carried = tuple(dict.fromkeys(([found_id] if found_id else []) + list(kept)))
    clashing = [name for name in carried if name in SCORE_COLUMNS]
    if clashing:
        raise LeadscoreError(f"column {clashing[0]!r} of {data} would clash with the score column of that name")
    return ColumnPlan(renames, carried, found_id, missing)


def _missing_fields_message(data: Path, fields: list[str], missing: tuple[str, ...], columns: list[str]) -> str:
    found = ", ".join(map(str, columns[:8])) + (", ..." if len(columns) > 8 else "")
    if len(missing) == len(fields):
        return f"none of the model's fields are columns of {data}: expected {', '.join(fields)}; found {found}"
    return (
        f"{len(missing)} of the model's {len(fields)} fields are not columns of {data}: "
        f"{', '.join(missing)} (expected {', '.join(fields)})"
    )


def _named_column(by_key: dict[str, str], name: str, data: Path, option: str) -> str:
    if column_key(name) not in by_key:
        raise LeadscoreError(f"{option} {name!r} is not a column of {data}")
    return by_key[column_key(name)]


def _id_column(by_key: dict[str, str], bundle: Bundle, data: Path, id_column: str | None) -> str | None:
    """--id when given; else the spec's id; else the first column named `id` or ending in `_id` that is not
    one of the model's fields; else none."""
    if id_column:
        return _named_column(by_key, id_column, data, "--id")
    spec_id = bundle.spec.get("id")
    if spec_id and column_key(spec_id) in by_key:
        return by_key[column_key(spec_id)]
    fields = {column_key(name) for name in bundle.fields}
    for key, name in by_key.items():
        if key not in fields and (key == "id" or key.endswith("_id")):
            return name
    return None


def spec_id_plan(bundle: Bundle, columns: list[str]) -> ColumnPlan:
    """A frame built by the caller, taken as it is: only the spec's id column, when present, is carried."""
    spec_id = bundle.spec.get("id")
    carried = (spec_id,) if spec_id and spec_id in columns else ()
    return ColumnPlan({}, carried, carried[0] if carried else None, ())


def score_frame(
    bundle: Bundle, frame: pd.DataFrame, engine: ServingEngine, plan: ColumnPlan | None = None
) -> pd.DataFrame:
    """Probability, grade and percentile per lead, after the columns the plan carries (the id first)."""
    plan = plan or spec_id_plan(bundle, list(frame.columns))
    probability = engine.probabilities(bundle.pipeline["encode"].transform(frame.rename(columns=plan.renames)))
    scored = pd.DataFrame(index=frame.index)
    for name in plan.carried:
        scored[name] = frame[name].astype(str) if name == plan.id_column else frame[name]
    scored["probability"] = probability
    scored["grade"] = assign_grades(probability, bundle.grades["thresholds"], bundle.grades["names"])
    scored["percentile"] = np.round(percentile(probability, bundle.reference["scores"]["quantiles"]), 1)
    return scored


def estimated_rows(path: Path) -> int:
    """Rows in a file without reading it: Parquet metadata, or a CSV's size over its average line length."""
    if not path.is_file():
        return 0
    if path.suffix == ".parquet":
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowInvalid, OSError):
            return 0
    with path.open("rb") as handle:
        sample = handle.read(1 << 20)
    lines = max(sample.count(b"\n"), 1)
    return int(path.stat().st_size / (len(sample) / lines))


def read_chunks(path: Path, chunk_rows: int, sep: str = ",") -> Iterator[pd.DataFrame]:
    """Stream a CSV or Parquet file in chunks of about chunk_rows rows; a CSV separated otherwise than by
    sep is refused, as training refuses it."""
    if is_database_url(path):
        raise LeadscoreError("leadscore score reads CSV or Parquet files; export the table first")
    if not path.is_file():
        raise LeadscoreError(f"data file {path} not found")
    if path.suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
        return
    refuse_wrong_delimiter(path, first_line(path), sep)
    yield from pd.read_csv(path, sep=sep, chunksize=chunk_rows, encoding="utf-8-sig", low_memory=False)


# OWASP's rule against CSV injection: a text cell starting with one of these is read as a formula by spreadsheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula, prefixed with a quote (numbers stay numbers)."""
    escaped = frame
    for name in frame.columns:
        column = frame[name]
        if column.dtype.kind not in "OUST":
            continue
        text = column.astype("string")
        risky = text.str.startswith(FORMULA_PREFIXES).fillna(False).to_numpy(dtype=bool)
        if risky.any():
            escaped = escaped.copy() if escaped is frame else escaped
            escaped[name] = column.where(~risky, "'" + text)
    return escaped


class ChunkWriter:
    """Append scored chunks to CSV or Parquet, writing the header or schema once."""

    def __init__(self, out: Path) -> None:
        if out.suffix not in {".csv", ".parquet"}:
            raise LeadscoreError(f"--out {out} must end in .csv or .parquet")
        self.out = out
        self.staging = out.with_name(f".{out.name}.partial")
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, scored: pd.DataFrame) -> None:
        if self.out.suffix == ".csv":
            scored = escape_formulas(scored)
        table = pa.Table.from_pandas(scored, preserve_index=False)
        if self._writer is None:
            self._schema = table.schema
            open_writer = pq.ParquetWriter if self.out.suffix == ".parquet" else pacsv.CSVWriter
            self._writer = open_writer(self.staging, self._schema)
        self._writer.write_table(table.cast(self._schema))

    def close(self, success: bool) -> None:
        """Only a complete file replaces the output: a failure leaves the old file, if any, untouched."""
        if self._writer is not None:
            self._writer.close()
        if success and self.staging.exists():
            self.staging.replace(self.out)
        else:
            self.staging.unlink(missing_ok=True)


@dataclass(frozen=True)
class FileLayout:
    """How to read a lead file and what to carry from it: its CSV separator, the id column when the spec names
    none (or another), and further columns to copy into the scores."""

    sep: str = ","
    id_column: str | None = None
    keep: tuple[str, ...] = ()


def score_file(
    bundle: Bundle,
    data: Path,
    out: Path,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    show_progress: bool = True,
    layout: FileLayout = FileLayout(),
) -> BatchReport:
    """Score every lead in a file, chunk by chunk, with a progress bar."""
    from tqdm import tqdm

    out.parent.mkdir(parents=True, exist_ok=True)
    compiled = estimated_rows(data) >= COMPILE_FROM_ROWS
    engine = serving_engine(bundle.pipeline["model"], compiled=compiled, threads=os.cpu_count() or 1)
    writer = ChunkWriter(out)
    rows = chunks = 0
    plan: ColumnPlan | None = None
    success = False
    try:
        with tqdm(unit=" leads", disable=not show_progress, desc="scoring") as bar:
            for chunk in read_chunks(data, chunk_rows, layout.sep):
                plan = plan or plan_columns(list(chunk.columns), bundle, data, layout.id_column, layout.keep)
                writer.write(score_frame(bundle, chunk, engine, plan))
                rows += len(chunk)
                chunks += 1
                bar.update(len(chunk))
        success = True
    except (pd.errors.ParserError, pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise LeadscoreError(f"could not read {data} after {rows:,} rows: {str(exc).splitlines()[0]}") from None
    finally:
        writer.close(success)
    if plan is None:
        return BatchReport(rows, chunks, out)
    return BatchReport(rows, chunks, out, plan.id_column, plan.missing)
