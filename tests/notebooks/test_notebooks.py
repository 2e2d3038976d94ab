"""The notebooks run top to bottom on freshly made data and a freshly trained model, and are committed clean."""

from __future__ import annotations

import ast
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from training.bundle import Bundle, save_bundle
from training.data import prepare_leads, read_table
from training.spec import read_spec
from training.synthetic import write_sample
from training.train import fit_and_evaluate

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
EXPLORE = NOTEBOOKS / "01-explore-leads.ipynb"
REVIEW = NOTEBOOKS / "02-review-feature-importance.ipynb"
KERNEL = "leadscore-test"
CELL_TIMEOUT_S = 300
DIRECTORY_VARIABLES = ("LEADSCORE_NOTEBOOK_DATA", "LEADSCORE_NOTEBOOK_SPEC", "LEADSCORE_MODEL_DIR")


@dataclass(frozen=True)
class NotebookData:
    """A small lead table, its spec and a model trained on it, in a folder of their own."""

    data: Path
    spec: Path
    model_dir: Path
    bundle: Bundle

    def env(self) -> dict[str, str]:
        """What a user would export before starting Jupyter; no MPLBACKEND, so figures render as in Jupyter."""
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
        return env | {
            "LEADSCORE_NOTEBOOK_DATA": str(self.data),
            "LEADSCORE_NOTEBOOK_SPEC": str(self.spec),
            "LEADSCORE_MODEL_DIR": str(self.model_dir),
        }


@pytest.fixture(scope="module")
def notebook_data(tmp_path_factory: pytest.TempPathFactory) -> NotebookData:
    root = tmp_path_factory.mktemp("notebook-data")
    data = root / "leads.csv"
    spec = write_sample(data, rows=4_000, seed=5)
    fitted = fit_and_evaluate(prepare_leads(read_table(data), read_spec(spec)))
    shutil.rmtree(fitted.plots_dir, ignore_errors=True)
    models = root / "models"
    save_bundle(fitted.bundle, models / fitted.bundle.version)
    (models / "champion").symlink_to(fitted.bundle.version, target_is_directory=True)
    return NotebookData(data, spec, models / "champion", fitted.bundle)


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A kernel spec that starts this interpreter, so the test never depends on kernels registered on the machine."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    spec_dir = Path(install(kernel_name=KERNEL, prefix=str(prefix)))
    return [str(spec_dir.parent)]


def execute(path: Path, kernel_dirs: list[str], env: dict[str, str]) -> nbformat.NotebookNode:
    """Run every cell in order, from the notebook's own folder as Jupyter would; a failing cell raises."""
    notebook = nbformat.read(path, as_version=4)
    manager = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs))
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=env)
    return notebook


def printed(notebook: nbformat.NotebookNode) -> str:
    """Everything the cells printed or displayed as text."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def figures(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


def errors(notebook: nbformat.NotebookNode) -> list[str]:
    return [
        f"{output.get('ename')}: {output.get('evalue')}"
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


def test_the_kernel_runs_this_interpreter(kernel_dirs: list[str]) -> None:
    spec = KernelSpecManager(kernel_dirs=kernel_dirs).get_kernel_spec(KERNEL)
    assert spec.argv[0] == sys.executable


@pytest.mark.slow
def test_explore_notebook_runs_and_finds_the_planted_signal(
    notebook_data: NotebookData, kernel_dirs: list[str]
) -> None:
    notebook = execute(EXPLORE, kernel_dirs, notebook_data.env())
    text = printed(notebook)
    leads = pd.read_csv(notebook_data.data)
    assert not errors(notebook)
    assert f"{len(leads):,} leads, {int(leads['converted'].sum()):,} converted" in text
    for field in ("lead_source", "contact_role", "owns_home", "purchase_timeframe"):
        assert f"Conversion by {field}" in text
    assert "The strongest single field is" in text
    assert "stated_budget" in text  # the missing-values table lists the blanked budget
    assert figures(notebook) >= 2  # conversion bars and the monthly trend


@pytest.mark.slow
def test_review_notebook_runs_and_names_the_models_top_driver(
    notebook_data: NotebookData, kernel_dirs: list[str]
) -> None:
    notebook = execute(REVIEW, kernel_dirs, notebook_data.env())
    text = printed(notebook)
    top = notebook_data.bundle.importance[0]["field"]
    assert not errors(notebook)
    assert f"model {notebook_data.bundle.version}" in text
    assert f"Top driver: {top}" in text
    assert f"{top}: from " in text  # its partial dependence was computed
    for example in ("strong", "middling", "weak"):
        assert f"{example} lead L" in text
    assert "Best customers:" in text
    assert figures(notebook) >= 2  # importance bars and partial dependence


@pytest.mark.slow
def test_notebooks_find_make_runs_files_without_any_setting(
    notebook_data: NotebookData, kernel_dirs: list[str], tmp_path: Path
) -> None:
    """On a fresh clone after `make run`: data/sample/leads.csv, data/specs/sample.yaml and models/champion."""
    clone = tmp_path / "clone"
    (clone / "notebooks").mkdir(parents=True)
    shutil.copyfile(REPO / "pyproject.toml", clone / "pyproject.toml")
    (clone / "data" / "sample").mkdir(parents=True)
    shutil.copyfile(notebook_data.data, clone / "data" / "sample" / "leads.csv")
    (clone / "data" / "specs").mkdir()
    shutil.copyfile(REPO / "data" / "specs" / "sample.yaml", clone / "data" / "specs" / "sample.yaml")
    shutil.copytree(notebook_data.model_dir.resolve(), clone / "models" / notebook_data.bundle.version)
    (clone / "models" / "champion").symlink_to(notebook_data.bundle.version, target_is_directory=True)
    env = {key: value for key, value in notebook_data.env().items() if key not in DIRECTORY_VARIABLES}
    for source in (EXPLORE, REVIEW):
        shutil.copyfile(source, clone / "notebooks" / source.name)
        text = printed(execute(clone / "notebooks" / source.name, kernel_dirs, env))
        assert str(clone / "data" / "sample" / "leads.csv") in text


@pytest.mark.parametrize("path", [EXPLORE, REVIEW], ids=lambda p: p.name)
def test_committed_notebooks_are_valid_and_hold_no_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code"
    assert all(cell.outputs == [] for cell in code), f"{path.name} is committed with outputs; clear them"
    assert all(cell.execution_count is None for cell in code), f"{path.name} is committed with execution counts"


@pytest.mark.parametrize("path", [EXPLORE, REVIEW], ids=lambda p: p.name)
def test_notebooks_import_their_logic_from_training(path: Path) -> None:
    """Functions and classes belong in training/, where they are tested; notebooks only call them."""
    notebook = nbformat.read(path, as_version=4)
    imported: set[str] = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        defined = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)]
        assert not defined, f"{path.name} defines {defined}; move them into training/"
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "training.analysis" in imported
