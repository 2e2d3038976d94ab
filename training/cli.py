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


if __name__ == "__main__":
    app()
