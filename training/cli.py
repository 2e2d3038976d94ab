"""The `leadscore` command: a thin shell over functions that tests call directly."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from training.errors import LeadscoreError

app = typer.Typer(help="Lead-conversion scoring: generate sample leads, train, score, serve.", no_args_is_help=True)


@app.callback()
def leadscore() -> None:
    """Lead-conversion scoring: generate sample leads, train, score, serve."""


P = ParamSpec("P")
R = TypeVar("R")


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a LeadscoreError into one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LeadscoreError as exc:
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2) from None

    return wrapper


@app.command()
@one_line_errors
def generate(
    out: Annotated[Path, typer.Option(help="Output file: .csv or .parquet.")] = Path("data/sample/leads.csv"),
    rows: Annotated[int, typer.Option(min=1, help="Number of leads.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same file.")] = 0,
) -> None:
    """Write synthetic leads with a known ground truth, and their dataset spec beside them."""
    from training.synthetic import write_sample

    if out.suffix not in {".csv", ".parquet"}:
        raise LeadscoreError(f"--out {out} must end in .csv or .parquet")
    spec_out = write_sample(out, rows, seed)
    typer.echo(f"wrote {rows:,} leads to {out} and their spec to {spec_out}")


DataOption = Annotated[str, typer.Option("--data", help="Lead table: a CSV or Parquet file, or a database URL.")]
SpecOption = Annotated[Path, typer.Option("--spec", help="Dataset spec YAML (see data/README.md).")]
TableOption = Annotated[str | None, typer.Option(help="With a database URL: the table to read.")]
QueryOption = Annotated[str | None, typer.Option(help="With a database URL: a SELECT query to read.")]
SepOption = Annotated[str, typer.Option(help="CSV field separator.")]
ModelsDirOption = Annotated[
    Path | None, typer.Option("--models-dir", help="Bundle folder (default: LEADSCORE_MODELS_DIR or models/).")
]


@app.command()
@one_line_errors
def train(
    data: DataOption,
    spec: SpecOption,
    table: TableOption = None,
    query: QueryOption = None,
    sep: SepOption = ",",
    output_dir: Annotated[Path | None, typer.Option(help="Where bundles go (default: models/).")] = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    promote: Annotated[bool, typer.Option(help="Promote to champion if it passes the quality gate.")] = True,
    force: Annotated[bool, typer.Option(help="Promote even if the quality gate refuses.")] = False,
    min_per_class: Annotated[int, typer.Option(min=1, help="Minimum converted and not-converted leads.")] = 40,
    leakage_threshold: Annotated[
        float, typer.Option(min=0.5, max=1.0, help="Single-field holdout ROC AUC that stops training.")
    ] = 0.90,
    auc_margin: Annotated[
        float, typer.Option(help="Quality gate: ROC AUC may be this much below the champion's.")
    ] = 0.01,
    seed: Annotated[int, typer.Option(help="Random seed for folds and fitting (not the holdout).")] = 0,
    folds: Annotated[
        int, typer.Option(min=1, help="Cross-validation folds that choose the model; 1: a single split.")
    ] = 5,
) -> None:
    """Train, evaluate and register a model; write its bundle; promote it if it is at least as good."""
    from training.settings import get_training_settings
    from training.train import TrainOptions, stderr_progress, summary_text
    from training.train import train as run_training

    settings = get_training_settings()
    if experiment:
        settings = settings.model_copy(update={"experiment": experiment})
    options = TrainOptions(
        min_per_class=min_per_class,
        leakage_threshold=leakage_threshold,
        seed=seed,
        auc_margin=auc_margin,
        folds=folds,
    )
    result = run_training(
        data,
        spec,
        settings,
        options,
        output_dir=output_dir,
        table_name=table,
        query=query,
        sep=sep,
        promote_if_better=promote,
        force=force,
        progress=stderr_progress(),
    )
    typer.echo(summary_text(result))
    if result.promoted:
        typer.echo(pickup_text(output_dir or settings.models_dir))


@app.command()
@one_line_errors
def score(
    model: Annotated[
        str,
        typer.Option(
            "--model", help="Bundle directory, e.g. models/champion; with --engine spark also models:/NAME@ALIAS."
        ),
    ],
    data: Annotated[Path, typer.Option("--data", help="Leads to score: CSV or Parquet (with spark: or a folder).")],
    out: Annotated[Path, typer.Option("--out", help="Scores: .csv or .parquet (with spark: a folder of parts).")],
    chunk_rows: Annotated[int, typer.Option(min=1, help="Leads read and scored at a time.")] = 100_000,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    engine: Annotated[
        str, typer.Option(help="local: in this process; spark: the registered MLflow model on a Spark cluster.")
    ] = "local",
    master: Annotated[
        str | None, typer.Option(help="Spark master (default: LEADSCORE_SPARK_MASTER or local[*]).")
    ] = None,
) -> None:
    """Score a whole file: id, probability, grade and percentile per lead."""
    if engine == "spark":
        from training.settings import get_training_settings
        from training.spark import score_on_spark

        report = score_on_spark(model, data, out, master, get_training_settings().mlflow_tracking_uri)
        typer.echo(f"scored {report.rows:,} leads with model {report.model_version} on {report.master} into {out}")
        return
    if engine != "local":
        raise LeadscoreError(f"--engine {engine!r} must be local or spark")
    from training.batch import score_file
    from training.bundle import load_bundle

    bundle = load_bundle(model)
    report = score_file(bundle, data, out, chunk_rows, show_progress=progress)
    typer.echo(f"scored {report.rows:,} leads with model {bundle.version} into {report.out}")


@app.command()
@one_line_errors
def profile(
    data: DataOption,
    spec: SpecOption,
    table: TableOption = None,
    query: QueryOption = None,
    sep: SepOption = ",",
    top: Annotated[int, typer.Option(min=1, help="How many traits to show.")] = 10,
) -> None:
    """Print what the best customers share, as qualification questions."""
    import pandas as pd

    from training.data import prepare_leads, read_table
    from training.profile import profile_best_customers
    from training.spec import read_spec
    from training.timeproxy import time_proxies
    from training.wording import Wording

    dataset_spec = read_spec(spec)
    leads = prepare_leads(read_table(data, table, query, sep), dataset_spec, min_per_class=1)
    wording = Wording.from_spec(dataset_spec, leads.kinds, time_proxies(leads.features, leads.kinds, leads.time))
    found = profile_best_customers(
        leads.features, leads.kinds, pd.Series(leads.converted), leads.value, wording=wording
    )
    typer.echo(found.to_text(top))


models_app = typer.Typer(help="The bundles in the models folder.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _models_dir(models_dir: Path | None) -> Path:
    from training.settings import get_training_settings

    return models_dir or get_training_settings().models_dir


def pickup_text(models_dir: Path) -> str:
    """When a service already running picks up the new champion, by this environment's reload interval."""
    from service.follow import pickup_sentence

    champion = Path(models_dir) / "champion"
    return f"a running `leadscore serve` following {champion} serves it {pickup_sentence(_reload_interval_s())}"


def _reload_interval_s() -> float:
    from pydantic import ValidationError

    from service.settings import ServiceSettings

    try:
        return ServiceSettings().reload_interval_s
    except ValidationError:  # a bad value here is the service's to report, not the promotion's
        return ServiceSettings.model_fields["reload_interval_s"].default


@models_app.command("list")
@one_line_errors
def list_models(models_dir: ModelsDirOption = None) -> None:
    """Every bundle, newest first: holdout ROC AUC and ECE, registry version, and which is champion."""
    from training.registry import list_versions

    rows = list_versions(_models_dir(models_dir))
    if not rows:
        typer.echo(f"no bundles in {_models_dir(models_dir)}; run leadscore train")
        return
    typer.echo(f"{'':2}{'version':24} {'dataset':12} {'ROC AUC':>8} {'ECE':>7} {'registry':>8}  created")
    for row in rows:
        mark = "* " if row["champion"] else "  "
        auc = f"{row['roc_auc']:.3f}" if row["roc_auc"] is not None else "-"
        ece = f"{row['ece']:.3f}" if row["ece"] is not None else "-"
        typer.echo(
            f"{mark}{row['version']:24} {row['dataset'] or '-':12} {auc:>8} {ece:>7} "
            f"{row['registered_version'] or '-':>8}  {row['created_at']}"
        )
    typer.echo("* champion")


@app.command("promote")
@one_line_errors
def promote_version(
    version: Annotated[str, typer.Argument(help="A version from `leadscore models list`.")],
    models_dir: ModelsDirOption = None,
) -> None:
    """Make a bundle the champion (checksum verified; the registry alias moves too)."""
    from training.registry import promote as run_promote

    entry = run_promote(_models_dir(models_dir), version, reason="promoted by hand")
    typer.echo(f"champion is now {entry['version']} (was {entry['previous'] or 'none'})")
    typer.echo(pickup_text(_models_dir(models_dir)))


@app.command()
@one_line_errors
def rollback(models_dir: ModelsDirOption = None) -> None:
    """Restore the previous champion."""
    from training.registry import rollback as run_rollback

    entry = run_rollback(_models_dir(models_dir))
    typer.echo(f"champion is now {entry['version']} (rolled back from {entry['previous']})")
    typer.echo(pickup_text(_models_dir(models_dir)))


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def unsigned_bundles_warning(host: str) -> str | None:
    """What `serve` says at start when it listens beyond loopback without a bundle signing key."""
    from training.bundle import SIGNING_KEY_VARIABLE, signing_key

    if host in LOOPBACK_HOSTS or signing_key() is not None:
        return None
    return (
        f"warning: {SIGNING_KEY_VARIABLE} is not set, so bundles are trusted by checksum alone: whoever can write "
        "the models folder can run code in this service; set the same key when training and serving"
    )


@app.command()
@one_line_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    model: Annotated[Path | None, typer.Option(help="Bundle directory (default: LEADSCORE_MODEL_DIR).")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request (costs about a fifth of throughput).")] = False,
) -> None:
    """Serve the scoring API under uvicorn (uvloop and httptools when installed)."""
    import os
    import tempfile

    from service.server import run_server
    from service.settings import get_service_settings

    if model is not None:
        os.environ["LEADSCORE_MODEL_DIR"] = str(model)
    get_service_settings.cache_clear()
    settings = get_service_settings()
    if settings.open_access and host not in LOOPBACK_HOSTS:
        raise LeadscoreError(
            f"no API keys configured: refusing to listen on {host}; set LEADSCORE_API_KEYS (and LEADSCORE_ADMIN_KEYS)"
            f" or serve on 127.0.0.1"
        )
    warning = unsigned_bundles_warning(host)
    if warning:
        typer.echo(warning, err=True)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # each worker keeps its own counters; prometheus_client aggregates them through this folder
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="leadscore-metrics-")
    run_server("service.app:create_app", host, port, workers, access_log, timeout_graceful_shutdown=30)


if __name__ == "__main__":
    app()
