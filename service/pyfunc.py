"""The bundle as an MLflow pyfunc model: MLflow, Spark and `mlflow models serve` score as the service scores.

``LeadscoreModel`` loads the bundle logged beside it (checksum and library versions verified, example leads
re-scored) and builds the service's scorer on it. With reasons it answers through ``service.scorer.Scorer``,
the code that serves HTTP requests; without, it scores column by column with the scorer's engine as
`leadscore score` does (``training.batch.score_frame``), building no reply per lead. Both return the served
probability, grade and percentile, whatever model family the bundle holds. A lead table's columns are first
read as the service's request validation would read JSON: numbers from integers or floats, booleans from
true/false or the usual words, categories as text or codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from service.scorer import Scorer
from training.batch import score_frame
from training.bundle import Bundle, BundleError, load_bundle, smoke_test
from training.errors import LeadscoreError
from training.model import BOOLEAN_CODES
from training.placeholders import placeholder_key

BUNDLE_ARTIFACT = "bundle"
REASONS_PARAM = "reasons"
REASON_CHOICES = ("none", "top", "all")
SCORE_COLUMNS = ("probability", "grade", "percentile")
_SAMPLE_CHARS = 40


class LeadInputError(LeadscoreError, ValueError):
    """A column whose values cannot be what the model's schema says, named with an example of what it held."""


class LeadscoreModel(mlflow.pyfunc.PythonModel):
    """The registered model: the bundle, scored by the service's scorer."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Load the bundle only after its checksum and library versions check out, then prove the scorer on it."""
        self.scorer = scorer_for(load_bundle(Path(context.artifacts[BUNDLE_ARTIFACT])))

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """lead_id (when given), probability, grade, percentile; reasons and base_value when asked for."""
        from mlflow.exceptions import MlflowException

        try:
            return score_leads(self.scorer, model_input, reasons_param(params))
        except LeadInputError as exc:  # MLflow's servers answer this one with a 400 naming the column
            raise MlflowException.invalid_parameter_value(str(exc)) from None


def scorer_for(bundle: Bundle) -> Scorer:
    """The service's scorer, refused unless it reproduces the probabilities training recorded for the examples."""
    smoke_test(bundle)
    scorer = Scorer(bundle)
    expected = np.asarray(bundle.example_probabilities)
    got = np.array([result["probability"] for result in scorer.score(bundle.examples, reasons="none")])
    if got.shape != expected.shape or np.max(np.abs(got - expected)) > 1e-9:
        raise BundleError(f"bundle {bundle.version}: the scorer disagrees with the pipeline; refusing it")
    return scorer


def reasons_param(params: dict[str, Any] | None) -> str:
    value = str((params or {}).get(REASONS_PARAM) or "none").lower()
    if value not in REASON_CHOICES:
        raise LeadInputError(f"params.reasons is {value!r}; it must be one of: {', '.join(REASON_CHOICES)}")
    return value


def score_leads(scorer: Scorer, leads: pd.DataFrame, reasons: str = "none") -> pd.DataFrame:
    """Score a table of leads as the service scores them; columns the model does not know are ignored."""
    leads = pd.DataFrame(leads)
    scored = scores(scorer, leads) if reasons == "none" else scores_with_reasons(scorer, leads, reasons)
    if scorer.id_field and scorer.id_field in leads.columns:
        scored.insert(0, "lead_id", lead_ids(leads[scorer.id_field]))
    return scored


def scores(scorer: Scorer, leads: pd.DataFrame) -> pd.DataFrame:
    """Probability, grade and percentile computed column by column, as `leadscore score` computes them."""
    return score_frame(scorer.bundle, lead_frame(scorer, leads), scorer.engine)


def scores_with_reasons(scorer: Scorer, leads: pd.DataFrame, reasons: str) -> pd.DataFrame:
    """The scorer's replies, reasons and base value included, as columns."""
    scored = scorer.score_columns(lead_columns(scorer, leads), len(leads), reasons).results if len(leads) else []
    out: dict[str, Any] = {}
    out["probability"] = np.array([result["probability"] for result in scored], dtype=float)
    out["grade"] = [result["grade"] for result in scored]
    out["percentile"] = np.array([result["percentile"] for result in scored], dtype=float)
    out["reasons"] = [result["reasons"] for result in scored]
    out["base_value"] = np.array([result["base_value"] for result in scored], dtype=float)
    return pd.DataFrame(out, index=leads.index)


def lead_columns(scorer: Scorer, leads: pd.DataFrame) -> dict[str, list[Any]]:
    """One list per field the scorer reads, with the values request validation would hand it; absent: None."""
    columns: dict[str, list[Any]] = {}
    kinds = dict(zip(scorer.fields, scorer.kinds, strict=True))
    for name in scorer.read_fields:
        if name not in leads.columns:
            columns[name] = [None] * len(leads)
        elif name == scorer.id_field:
            columns[name] = lead_ids(leads[name])
        elif kinds[name] == "numeric":
            columns[name] = numbers(name, without_placeholders(leads[name], scorer.placeholders[name]))
        elif kinds[name] == "boolean":
            columns[name] = booleans(name, without_placeholders(leads[name], scorer.placeholders[name]))
        else:
            columns[name] = categories(leads[name])
    return columns


def lead_frame(scorer: Scorer, leads: pd.DataFrame) -> pd.DataFrame:
    """The model's fields found in the table, read as request validation would read them, for the bundle's
    encoder: numbers as floats, booleans as 1/0, missing as NaN; categories as they are (the encoder trims
    text, reads 33, 33.0 and "33" as one level, and scores placeholders and unseen levels as missing)."""
    kinds = dict(zip(scorer.fields, scorer.kinds, strict=True))
    columns: dict[str, Any] = {}
    for name in (field for field in scorer.fields if field in leads.columns):
        if kinds[name] == "numeric":
            columns[name] = number_array(name, without_placeholders(leads[name], scorer.placeholders[name]))
        elif kinds[name] == "boolean":
            columns[name] = boolean_array(name, without_placeholders(leads[name], scorer.placeholders[name]))
        else:
            columns[name] = leads[name]
    return pd.DataFrame(columns, index=leads.index)


def without_placeholders(column: pd.Series, placeholders: frozenset[str]) -> pd.Series:
    """A number's or boolean's declared placeholders ('n/a') read as missing, as the service scores them."""
    if not placeholders or pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column
    declared = column.map(lambda value: isinstance(value, str) and placeholder_key(value) in placeholders)
    return column.mask(declared.astype(bool)) if declared.any() else column


def _with_none(values: np.ndarray, missing: np.ndarray) -> list[Any]:
    out = values.astype(object)
    out[missing] = None
    return out.tolist()


def number_array(name: str, column: pd.Series) -> np.ndarray:
    """Floats from integer, float or numeric-text columns; missing values are NaN."""
    if pd.api.types.is_bool_dtype(column):
        raise LeadInputError(f"column {name!r} holds true/false values; the model reads it as a number")
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=float, na_value=np.nan)
    present = column.notna()
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    unreadable = present.to_numpy() & np.isnan(values)
    if unreadable.any():
        sample = str(column[unreadable].iloc[0])[:_SAMPLE_CHARS]
        raise LeadInputError(f"column {name!r} must hold numbers; found {sample!r}")
    return values


def numbers(name: str, column: pd.Series) -> list[float | None]:
    """Numbers as the service's validation hands them over; missing and infinite values are scored as missing."""
    values = number_array(name, column)
    return _with_none(values, ~np.isfinite(values))


def boolean_array(name: str, column: pd.Series) -> np.ndarray:
    """1.0/0.0 from booleans, 0/1 or the words the training data accepts (yes/no, true/false, ...); missing NaN."""
    missing = column.isna().to_numpy()
    present = column[~missing]
    if pd.api.types.infer_dtype(present, skipna=False) == "boolean":  # true/false only: no text to read
        codes = present.to_numpy(dtype=float)
    else:
        codes = present.map(lambda value: BOOLEAN_CODES.get(str(value).strip().lower())).to_numpy(dtype=float)
    if np.isnan(codes).any():
        sample = str(present[np.isnan(codes)].iloc[0])[:_SAMPLE_CHARS]
        raise LeadInputError(f"column {name!r} must hold true/false (or yes/no, 1/0); found {sample!r}")
    out = np.full(len(column), np.nan)
    out[~missing] = codes
    return out


def booleans(name: str, column: pd.Series) -> list[bool | None]:
    """True/False as the service's validation hands them over; missing: None."""
    codes = boolean_array(name, column)
    return _with_none(codes == 1.0, np.isnan(codes))


def categories(column: pd.Series) -> list[Any]:
    """Text or codes as they are; the scorer trims text and reads 33, 33.0 and "33" as one level."""
    return _with_none(column.to_numpy(dtype=object), column.isna().to_numpy())


def lead_ids(column: pd.Series) -> list[str | None]:
    """Ids as text, as the score log keeps them; integer ids read as floats (a column with gaps) lose the .0."""
    if pd.api.types.is_float_dtype(column):
        values = column.to_numpy(dtype=float)
        whole = np.isfinite(values) & (values == np.round(values))
        text = [str(int(v)) if w else str(v) for v, w in zip(values.tolist(), whole.tolist(), strict=True)]
        return _with_none(np.array(text, dtype=object), np.isnan(values))
    return _with_none(column.astype(str).to_numpy(dtype=object), column.isna().to_numpy())


SPARK_TYPES = {"numeric": "double", "boolean": "boolean", "categorical": "string"}


def model_signature(bundle: Bundle, typed: bool = False) -> Any:
    """Every field optional, unknown columns ignored, reasons chosen through params.

    The registered model takes any type per field: files hold integers where the schema says numbers and codes
    where it says categories, and ``lead_columns`` checks each column by name. MLflow checks such a column value
    by value in Python (~1.5 µs each), so the Spark job, which casts every column to its kind's type before the
    model sees it, packs the same model with typed fields (``typed=True``) that MLflow checks column by column.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema

    kinds = {field.name: field.kind for field in bundle.schema}
    inputs = (
        [ColSpec("string" if typed else AnyType(), bundle.spec["id"], required=False)] if bundle.spec.get("id") else []
    )
    inputs += [
        ColSpec(SPARK_TYPES[kinds[name]] if typed else AnyType(), name, required=False) for name in bundle.fields
    ]
    reason = Object(
        [Property("field", "string"), Property("value", AnyType(), required=False), Property("contribution", "double")]
    )
    outputs = Schema(
        [
            ColSpec("string", "lead_id", required=False),
            ColSpec("double", "probability"),
            ColSpec("string", "grade"),
            ColSpec("double", "percentile"),
            ColSpec(Array(reason), "reasons", required=False),
            ColSpec("double", "base_value", required=False),
        ]
    )
    return ModelSignature(Schema(inputs), outputs, ParamSchema([ParamSpec(REASONS_PARAM, "string", "none")]))
