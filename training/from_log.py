"""A trainable lead table from the service's score log: each lead's fields as first scored, and its latest outcome.

One row per lead id: the lead fields of its first score (what the model saw before anyone knew the outcome), that
score's time as the spec's time column, the model version that scored it, and the latest reported outcome as the
target. Leads still without an outcome follow the label window: first scored longer ago than the window, they count
as not converted; newer, they are left out, since their outcome may still come.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from service.store import (
    build_engine,
    database_url,
    describe_error,
    outcomes_table,
    redact_url,
    score_batches_table,
)
from service.store.reading import scores_frame
from training.durations import parse_duration
from training.errors import LeadscoreError
from training.spec import DatasetSpec, MissingValues, write_spec
from training.synthetic import write_leads

DEFAULT_LABEL_WINDOW = "90d"
MODEL_VERSION = "model_version"  # the column naming the model that first scored the lead; never a feature
DEFAULT_ID = "lead_id"  # the id column when the spec names none
DEFAULT_TIME = "scored_at"  # the time column when the spec names none
BLOBS_PER_READ = 64  # score-log writes decoded at a time: each holds up to one request's scores
OUTCOMES_PER_READ = 10_000
_SCORE_ONLY = ("probability", "grade")  # score columns the dataset leaves out
_NOT_FIELDS = {"lead_id", MODEL_VERSION, "scored_at", "converted", "outcome_value"}


@dataclass(frozen=True)
class LabelCounts:
    """What happened to each lead in the log."""

    leads: int  # distinct lead ids scored
    with_outcome: int
    assumed_not_converted: int  # no outcome, first scored longer ago than the label window
    left_out: int  # no outcome, first scored within the label window

    @property
    def rows(self) -> int:
        return self.with_outcome + self.assumed_not_converted

    def describe(self, window: str) -> str:
        return (
            f"{self.leads:,} leads in the score log: {self.with_outcome:,} with an outcome, "
            f"{self.assumed_not_converted:,} counted as not converted (no outcome, first scored over {window} ago), "
            f"{self.left_out:,} left out (no outcome yet, first scored within {window})"
        )


@dataclass(frozen=True)
class LogDataset:
    """The lead table, the spec it trains with, and how its leads were labelled."""

    table: pd.DataFrame
    spec: DatasetSpec
    counts: LabelCounts


def dataset_from_log(
    url: str, spec: DatasetSpec, window: str = DEFAULT_LABEL_WINDOW, now: datetime | None = None
) -> LogDataset:
    """Read the score log and outcomes at this database URL into a labelled lead table and its spec."""
    span = parse_duration(window, "--label-window")
    engine = _open(url)
    try:
        first = read_first_scores(engine)
        outcomes = read_latest_outcomes(engine)
    except SQLAlchemyError as exc:
        raise LeadscoreError(f"cannot read the score log at {redact_url(engine.url)}: {describe_error(exc)}") from None
    finally:
        engine.dispose()
    labelled, counts = label_leads(first, outcomes, span, now or datetime.now(UTC))
    table = lead_table(labelled, spec)
    return LogDataset(table, log_spec(spec, table.columns), counts)


def _open(url: str) -> Engine:
    """An engine on an existing score log; a missing SQLite file or a database without one is an error."""
    try:
        parsed = database_url(url)
    except ValueError as exc:
        raise LeadscoreError(str(exc)) from None
    on_disk = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if on_disk and not Path(str(parsed.database)).is_file():  # SQLite would create an empty one
        raise LeadscoreError(
            f"SQLite database {parsed.database} not found; pass --database-url or set LEADSCORE_DATABASE_URL"
        )
    engine = build_engine(parsed)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = describe_error(exc, parsed.password)
        raise LeadscoreError(f"cannot open the database at {redact_url(parsed)}: {reason}") from None
    if not {score_batches_table.name, outcomes_table.name} <= tables:
        engine.dispose()
        raise LeadscoreError(
            f"{redact_url(parsed)} holds no score log (no {score_batches_table.name} table); "
            "is it the service's database?"
        )
    return engine


def read_first_scores(engine: Engine, blobs_per_read: int = BLOBS_PER_READ) -> pd.DataFrame:
    """Each lead's first score (earliest time, then the first written): lead id, model version, time, lead fields.

    The log is read a few writes at a time, oldest first; only each lead's earliest score so far is kept.
    """
    b = score_batches_table.c
    kept: list[pd.DataFrame] = []
    first_seen: dict[str, pd.Timestamp] = {}
    after = 0
    with engine.connect() as conn:
        while True:
            page = conn.execute(select(b.id, b.columns).where(b.id > after).order_by(b.id).limit(blobs_per_read)).all()
            if not page:
                break
            after = page[-1].id
            earliest = _earliest_per_lead([row.columns for row in page])
            new = _earlier_than_seen(earliest, first_seen)
            if len(new):
                first_seen.update(zip(new["lead_id"], new["scored_at"], strict=True))
                kept.append(new)
    if not kept:
        return pd.DataFrame(
            {
                "lead_id": pd.Series(dtype=object),
                MODEL_VERSION: pd.Series(dtype=object),
                "scored_at": pd.Series(dtype="datetime64[us, UTC]"),
            }
        )
    firsts = pd.concat(kept, ignore_index=True)
    # a lead re-found earlier in a later write (clocks of several workers) appears twice: its earliest row counts
    return firsts.sort_values("scored_at", kind="stable").drop_duplicates("lead_id").reset_index(drop=True)


def _earliest_per_lead(blobs: list[bytes]) -> pd.DataFrame:
    """These writes' scores (given oldest first), each lead's earliest only, lead fields as columns."""
    # scores_frame takes writes newest first and returns scores newest first, ties in written order reversed
    frame = scores_frame(blobs[::-1], sys.maxsize).iloc[::-1]
    frame = frame.drop(columns=list(_SCORE_ONLY))
    frame = frame.rename(columns={f"feature_{name}": name for name in _SCORE_ONLY})  # lead fields named like them
    frame = frame[frame["lead_id"].notna()]
    frame = frame.sort_values("scored_at", kind="stable")
    return frame.drop_duplicates("lead_id").reset_index(drop=True)


def _earlier_than_seen(candidates: pd.DataFrame, first_seen: dict[str, pd.Timestamp]) -> pd.DataFrame:
    """The candidates for leads not seen yet, or seen only at a later time."""
    seen = [first_seen.get(lead) for lead in candidates["lead_id"]]
    keep = [at is None or new < at for at, new in zip(seen, candidates["scored_at"], strict=True)]
    return candidates[keep]


def read_latest_outcomes(engine: Engine) -> pd.DataFrame:
    """Each lead's latest outcome report (the last posted), as the lead lookup and monitoring count it."""
    o = outcomes_table.c
    latest = select(o.lead_id, o.converted, o.value).where(o.id.in_(select(func.max(o.id)).group_by(o.lead_id)))
    leads: list[str] = []
    converted: list[bool] = []
    values: list[float | None] = []
    with engine.connect() as conn:
        for rows in conn.execution_options(yield_per=OUTCOMES_PER_READ).execute(latest).partitions():
            for row in rows:
                leads.append(row.lead_id)
                converted.append(bool(row.converted))
                values.append(row.value)
    return pd.DataFrame(
        {
            "lead_id": pd.Series(leads, dtype=object),
            "converted": pd.Series(converted, dtype=bool),
            "outcome_value": pd.Series(values, dtype="float64"),
        }
    )


def label_leads(
    first: pd.DataFrame, outcomes: pd.DataFrame, window: timedelta, now: datetime
) -> tuple[pd.DataFrame, LabelCounts]:
    """First scores with their outcome: the latest one, else not converted once the window has passed, else none."""
    merged = first.merge(outcomes, on="lead_id", how="left", validate="one_to_one")
    reported = merged["converted"].notna()
    expired = merged["scored_at"] < pd.Timestamp(now).tz_convert(UTC) - window
    keep = reported | expired
    counts = LabelCounts(
        leads=len(merged),
        with_outcome=int(reported.sum()),
        assumed_not_converted=int((~reported & expired).sum()),
        left_out=int((~keep).sum()),
    )
    labelled = merged[keep].reset_index(drop=True)
    labelled["converted"] = labelled["converted"].astype("boolean").fillna(False).astype(bool)
    return labelled, counts


def lead_table(labelled: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The columns a spec expects: id, time, lead fields, target (and value), then the model version."""
    id_name, time_name = spec.id or DEFAULT_ID, spec.time or DEFAULT_TIME
    fields = [c for c in labelled.columns if c not in _NOT_FIELDS]
    table = pd.DataFrame({id_name: labelled["lead_id"], time_name: labelled["scored_at"]})
    table = pd.concat([table, labelled[fields]], axis=1)
    table[spec.target] = labelled["converted"].map({True: spec.positive, False: negative_of(spec.positive)})
    if spec.value:
        table[spec.value] = labelled["outcome_value"]
    table[MODEL_VERSION] = labelled[MODEL_VERSION]
    return table


def negative_of(positive: str | int | bool) -> str | int | bool:
    """The target value written for a lead that did not convert: anything but the spec's positive value."""
    if isinstance(positive, bool):
        return not positive
    if isinstance(positive, int):
        return 0 if positive != 0 else 1
    return f"not {positive}"


def log_spec(spec: DatasetSpec, columns: pd.Index | list[str]) -> DatasetSpec:
    """The spec for the table: its id and time columns named, the model version excluded, and the fields the log
    never holds (PII, excluded fields) no longer named."""
    present = set(columns)
    fields = {name: values for name, values in spec.missing_values.fields.items() if name in present}
    return spec.model_copy(
        update={
            "id": spec.id or DEFAULT_ID,
            "time": spec.time or DEFAULT_TIME,
            "features": None if spec.features is None else [f for f in spec.features if f in present],
            "categorical": [c for c in spec.categorical if c in present],
            "exclude": [*(c for c in spec.exclude if c in present and c != MODEL_VERSION), MODEL_VERSION],
            "pii": [c for c in spec.pii if c in present],
            "allow_leaky": [c for c in spec.allow_leaky if c in present],
            "missing_values": MissingValues(all=spec.missing_values.all, fields=fields),
            "description": {name: text for name, text in spec.description.items() if name in present},
        }
    )


def spec_path_for(out: Path) -> Path:
    """Where the table's spec goes: beside it, as <stem>.spec.yaml."""
    return out.with_name(out.stem + ".spec.yaml")


def check_output(out: Path) -> None:
    """Refuse an output the table cannot be written as, before the log is read."""
    if out.suffix not in {".csv", ".parquet"}:
        raise LeadscoreError(f"--out {out} must end in .csv or .parquet")


def write_dataset(dataset: LogDataset, out: Path, source_spec: Path) -> Path:
    """Write the table (CSV or Parquet by extension) and its spec beside it; returns the spec's path."""
    check_output(out)
    if dataset.counts.rows == 0:
        raise LeadscoreError(
            "no lead in the score log has an outcome or was first scored before the label window; nothing to write"
        )
    write_leads(dataset.table, out)
    spec_out = spec_path_for(out)
    header = (
        f"# Dataset spec for leads from the score log (leadscore dataset --from-log), made from {source_spec}:\n"
        f"# {MODEL_VERSION} (the model that first scored each lead) is excluded;\n"
        "# fields the log never holds (PII, excluded fields) are not named.\n"
    )
    write_spec(dataset.spec, spec_out, header=header)
    return spec_out
