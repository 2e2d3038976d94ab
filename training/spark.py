"""Warehouse-scale batch scoring on Spark, through the registered MLflow model (``mlflow.pyfunc.spark_udf``).

The pyfunc model wraps the bundle and scores with the service's scorer, so every executor computes what the
service would. The bundle, from a folder or as a registered model holds it, is packed into the same pyfunc
model with typed fields first.
CSV is read with the model's numeric fields as doubles and everything else as text (no schema-inference pass
over the data); Parquet keeps its own types, numbers cast to double. Scores are written as Parquet parts.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import LeadscoreError

DEFAULT_MASTER = "local[*]"
MASTER_VARIABLE = "LEADSCORE_SPARK_MASTER"
# rows handed to each model call: large enough that the per-call costs (pandas frames, schema checks) fade
ARROW_BATCH_ROWS = 50_000
REGISTRY_SCHEMES = ("models:/", "runs:/")


@dataclass(frozen=True)
class SparkReport:
    rows: int
    model_version: str
    out: Path
    master: str


@dataclass(frozen=True)
class ModelFields:
    """What the Spark job needs to know about the model: its fields by kind and the id column."""

    version: str
    fields: list[str]
    kinds: dict[str, str]
    id_field: str | None


def spark_master(master: str | None = None) -> str:
    return master or os.environ.get(MASTER_VARIABLE) or DEFAULT_MASTER


def require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise LeadscoreError("--engine spark needs pyspark: pip install 'leadscore[spark]'") from None


@contextmanager
def pyfunc_model_uri(model: str, tracking_uri: str) -> Iterator[str]:
    """The bundle packed into the registered model's pyfunc form with typed fields, in a temp folder: a bundle
    folder as it is, a registry URI's as the registered model holds it. Spark has cast every column to its
    kind's type, so MLflow checks each column once instead of each value of a field of any type."""
    import mlflow

    from training.tracking import quiet_mlflow, save_pyfunc_model

    quiet_mlflow()
    registered = model.startswith(REGISTRY_SCHEMES)
    if registered:
        mlflow.set_tracking_uri(tracking_uri)
    elif not (Path(model) / "bundle.json").is_file():
        raise LeadscoreError(f"--model {model} is neither a bundle folder nor a models:/NAME@ALIAS registry URI")
    with tempfile.TemporaryDirectory(prefix="leadscore-pyfunc-") as folder:
        bundle_dir = registered_bundle(model, Path(folder)) if registered else Path(model)
        yield str(save_pyfunc_model(bundle_dir, Path(folder) / "model", typed=True))


def registered_bundle(model_uri: str, folder: Path) -> Path:
    """The bundle a registered model holds, downloaded with it; packing it verifies its checksum (``load_bundle``)."""
    import mlflow
    from mlflow.models import Model

    from service.pyfunc import BUNDLE_ARTIFACT

    try:
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(folder / "registered")))
        artifacts = Model.load(str(local)).flavors.get("python_function", {}).get("artifacts") or {}
    except Exception as exc:
        raise LeadscoreError(f"cannot load model {model_uri}: {_first_line(exc)}") from None
    if BUNDLE_ARTIFACT not in artifacts:
        raise LeadscoreError(f"{model_uri} is not a leadscore model: it holds no {BUNDLE_ARTIFACT!r} artifact")
    return local / artifacts[BUNDLE_ARTIFACT]["path"]


def model_fields(model_uri: str) -> ModelFields:
    """Load the model once on the driver: a bad checksum stops here, before any executor starts."""
    import mlflow.pyfunc

    try:
        scorer = mlflow.pyfunc.load_model(model_uri).unwrap_python_model().scorer
    except LeadscoreError:
        raise
    except Exception as exc:
        raise LeadscoreError(f"cannot load model {model_uri}: {str(exc).strip().splitlines()[0]}") from None
    kinds = dict(zip(scorer.fields, scorer.kinds, strict=True))
    return ModelFields(scorer.version, list(scorer.fields), kinds, scorer.id_field)


def spark_session(master: str) -> Any:
    """A session whose Python workers run this interpreter; in local mode it listens on loopback only, no UI."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    builder = (
        SparkSession.builder.master(master)
        .appName("leadscore-score")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
    )
    if master.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read_leads(spark: Any, data: Path, model: ModelFields) -> Any:
    """CSV or Parquet, a file or a folder of parts; numeric fields as doubles."""
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    parts = sorted(data.glob("*")) if data.is_dir() else [data]
    suffixes = {p.suffix for p in parts if p.is_file() and not p.name.startswith(("_", "."))}
    if not data.exists():
        raise LeadscoreError(f"data {data} not found")
    if suffixes == {".parquet"}:
        return spark.read.parquet(str(data))
    if suffixes != {".csv"}:
        raise LeadscoreError(f"{data} must be a .csv or .parquet file, or a folder of one kind of part")
    header = _csv_header(next(p for p in parts if p.suffix == ".csv"))
    schema = StructType(
        [
            StructField(name, DoubleType() if model.kinds.get(name) == "numeric" else StringType(), True)
            for name in header
        ]
    )
    return spark.read.csv(str(data), header=True, schema=schema, mode="PERMISSIVE", encoding="UTF-8")


def typed_columns(leads: Any, model: ModelFields) -> list[Any]:
    """The id and the model's fields found in the table, each cast to its kind's type as `leadscore score` reads it:
    numbers as doubles, booleans from true/false or yes/no or 1/0 (anything else missing), categories and ids
    as text, with whole numbers written without ".0"."""
    from pyspark.sql import functions
    from pyspark.sql.types import BooleanType, NumericType, StringType

    types = {field.name: field.dataType for field in leads.schema.fields}
    wanted = ([model.id_field] if model.id_field else []) + model.fields
    columns = []
    for name in (n for n in wanted if n in types):
        column, kind = functions.col(name), model.kinds.get(name, "categorical")
        if kind == "numeric":
            column = column.try_cast("double")
        elif kind == "boolean" and isinstance(types[name], StringType):
            word = functions.lower(functions.trim(column))
            column = functions.regexp_replace(word, r"^([01])\.0$", "$1").try_cast("boolean")
        elif kind == "boolean" and not isinstance(types[name], BooleanType):
            column = column.try_cast("boolean")
        elif isinstance(types[name], NumericType):
            whole = functions.when(column == functions.floor(column), column.try_cast("long"))
            column = functions.coalesce(whole.cast("string"), column.cast("string"))
        columns.append(column.alias(name))
    return columns


def _csv_header(path: Path) -> list[str]:
    import csv

    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise LeadscoreError(f"{path} has no header line")
    return header


def result_type(with_id: bool) -> str:
    score = "probability double, grade string, percentile double"
    return f"lead_id string, {score}" if with_id else score


def score_on_spark(model: str, data: Path, out: Path, master: str | None, tracking_uri: str) -> SparkReport:
    """Score every lead through ``spark_udf`` and write Parquet parts into the ``out`` folder, atomically."""
    require_pyspark()
    import mlflow.pyfunc
    from pyspark.sql import functions

    master = spark_master(master)
    with pyfunc_model_uri(model, tracking_uri) as model_uri:
        fields = model_fields(model_uri)
        spark = spark_session(master)
        try:
            leads = read_leads(spark, data, fields)
            if not any(name in leads.columns for name in fields.fields):
                raise LeadscoreError(f"{data} holds none of the model's fields ({', '.join(fields.fields[:5])}, ...)")
            with_id = fields.id_field in leads.columns
            udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result_type(with_id), env_manager="local")
            lead = functions.struct(*typed_columns(leads, fields))
            scored = leads.select(udf(lead).alias("score")).select("score.*")
            staging = out.with_name(f".{out.name}.partial")
            shutil.rmtree(staging, ignore_errors=True)
            try:
                scored.write.parquet(str(staging))
                rows = spark.read.parquet(str(staging)).count()
            except BaseException as exc:
                shutil.rmtree(staging, ignore_errors=True)  # a failed job leaves no partial output behind
                if isinstance(exc, Exception) and not isinstance(exc, LeadscoreError):
                    raise LeadscoreError(f"Spark could not score {data}: {_first_line(exc)}") from None
                raise
        finally:
            spark.stop()
    _replace_folder(staging, out)
    return SparkReport(rows, fields.version, out, master)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:500]


def _replace_folder(staging: Path, out: Path) -> None:
    """Only a complete output replaces the old one."""
    if out.is_file():
        out.unlink()
    elif out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out)
