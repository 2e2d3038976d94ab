"""Every command's --help in an 80-column terminal shows each option whole."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer

from training.cli import app

COMMANDS = [("generate",), ("train",), ("score",), ("profile",), ("models", "list"), ("promote",), ("serve",)]


def _options(command: tuple[str, ...]) -> list[str]:
    group = typer.main.get_command(app)
    for name in command:
        group = group.commands[name]
    return [option for param in group.params for option in (*param.opts, *param.secondary_opts)]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_at_80_columns_cuts_nothing(command: tuple[str, ...]) -> None:
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm-256color"}
    env.pop("TERMINAL_WIDTH", None)
    shown = subprocess.run(
        [sys.executable, "-m", "training.cli", *command, "--help"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "…" not in shown
    assert max(map(len, shown.splitlines())) <= 80
    words = set(shown.replace("/", " ").split())
    missing = [option for option in _options(command) if option.startswith("--") and option not in words]
    assert not missing, f"options not shown whole: {missing}\n{shown}"
