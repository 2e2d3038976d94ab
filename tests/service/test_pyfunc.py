"""The registered MLflow model is the bundle: pyfunc, the service and `leadscore score` give the same scores."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from packaging.requirements import Requirement

from tests.conftest import Trained
from training.synthetic import generate_leads

CHAMPION_URI = "models:/leadscore@champion"
LEADS = 4_000


@pytest.fixture(scope="module")
def registered(trained: Trained) -> mlflow.pyfunc.PyFuncModel:
    mlflow.set_tracking_uri(trained.env.tracking_uri)
    return mlflow.pyfunc.load_model(CHAMPION_URI)


@pytest.fixture(scope="module")
def leads_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pyfunc") / "leads.csv"
    generate_leads(n=LEADS, seed=31).to_csv(path, index=False)
    return path


def service_scores(client: TestClient, frame: pd.DataFrame, reasons: str = "false") -> list[dict]:
    """The service's batch route on the lead fields of a table, as a CRM would send them (NaN as null)."""
    records = json.loads(frame.to_json(orient="records"))
    response = client.post(f"/v1/leads/score/batch?reasons={reasons}", json={"leads": records})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["failed"] == 0, body["errors"][:3]
    return body["results"]


def lead_fields(trained: Trained, frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[trained.bundle.spec["id"], *trained.bundle.fields]]


def test_the_registered_model_is_a_pyfunc_around_the_bundle(trained: Trained, registered) -> None:
    assert registered.loader_module == "mlflow.pyfunc.model"
    assert type(registered.unwrap_python_model()).__name__ == "LeadscoreModel"
    assert registered.unwrap_python_model().scorer.version == trained.bundle.version
    local = Path(mlflow.artifacts.download_artifacts(CHAMPION_URI))
    assert (local / "code" / "training" / "bundle.py").is_file()
    assert (local / "code" / "service" / "scorer.py").is_file()
    requirements = (local / "requirements.txt").read_text().split()
    assert f"lightgbm=={trained.bundle.versions['lightgbm']}" in requirements
    assert f"scikit-learn=={trained.bundle.versions['scikit-learn']}" in requirements


def test_pyfunc_the_service_and_leadscore_score_agree(
    trained: Trained, registered, client: TestClient, leads_csv: Path, tmp_path: Path
) -> None:
    leads = pd.read_csv(leads_csv)  # as a new user reads a file: integer columns stay int64
    assert any(leads[f].dtype == np.int64 for f in ("pages_viewed", "days_since_first_contact"))
    from_pyfunc = registered.predict(leads)
    assert list(from_pyfunc.columns) == ["lead_id", "probability", "grade", "percentile"]

    from_service = pd.DataFrame(service_scores(client, lead_fields(trained, leads)))
    out = tmp_path / "scores.parquet"
    result = trained.env.cli("score", "--model", str(trained.bundle_dir), "--data", str(leads_csv), "--out", str(out))
    assert result.exit_code == 0, result.output
    from_cli = pd.read_parquet(out)

    for other in (from_service, from_cli):
        assert len(other) == LEADS
        assert other["lead_id"].tolist() == from_pyfunc["lead_id"].tolist()
        np.testing.assert_allclose(from_pyfunc["probability"], other["probability"], rtol=0, atol=1e-9)
        assert other["grade"].tolist() == from_pyfunc["grade"].tolist()
        np.testing.assert_array_equal(from_pyfunc["percentile"], other["percentile"])
    assert from_pyfunc["grade"].nunique() > 2 and from_pyfunc["probability"].std() > 0.01


def test_reasons_come_through_params_as_the_service_gives_them(
    trained: Trained, registered, client: TestClient, leads_csv: Path
) -> None:
    leads = pd.read_csv(leads_csv).head(300)
    assert "reasons" not in registered.predict(leads).columns
    for mode, query in (("top", "true"), ("all", "all")):
        mine = registered.predict(leads, params={"reasons": mode})
        theirs = service_scores(client, lead_fields(trained, leads), reasons=query)
        for got, expected in zip(mine.to_dict("records"), theirs, strict=True):
            assert [r["field"] for r in got["reasons"]] == [r["field"] for r in expected["reasons"]]
            assert [r["value"] for r in got["reasons"]] == [r["value"] for r in expected["reasons"]]
            np.testing.assert_allclose(
                [r["contribution"] for r in got["reasons"]],
                [r["contribution"] for r in expected["reasons"]],
                rtol=0,
                atol=1e-9,
            )
            assert got["base_value"] == pytest.approx(expected["base_value"], abs=1e-9)
    every = registered.predict(leads.head(20), params={"reasons": "all"})
    for row in every.to_dict("records"):  # exact additive reasons: base value plus contributions is the log-odds
        log_odds = row["base_value"] + sum(r["contribution"] for r in row["reasons"])
        assert 1 / (1 + np.exp(-log_odds)) == pytest.approx(row["probability"], abs=1e-9)
    with pytest.raises(Exception, match="reasons"):
        registered.predict(leads.head(2), params={"reasons": "some"})


def test_missing_fields_are_scored_as_missing_and_unknown_columns_ignored(
    trained: Trained, registered, client: TestClient, leads_csv: Path
) -> None:
    leads = pd.read_csv(leads_csv).head(500)
    partial = leads.drop(columns=["stated_budget", "lead_source"]).assign(crm_owner="someone", score_v1=3)
    got = registered.predict(partial)
    sent = lead_fields(trained, leads).drop(columns=["stated_budget", "lead_source"])
    expected = service_scores(client, sent)
    np.testing.assert_allclose(got["probability"], [r["probability"] for r in expected], rtol=0, atol=1e-9)
    assert not np.allclose(got["probability"], registered.predict(leads)["probability"])
    signature = registered.metadata.signature
    assert all(not spec.required for spec in signature.inputs.inputs)
    assert [p.name for p in signature.params.params] == ["reasons"]


def test_a_column_that_cannot_be_a_number_is_named(registered, leads_csv: Path) -> None:
    leads = pd.read_csv(leads_csv).head(5).astype({"pages_viewed": object})
    leads.loc[2, "pages_viewed"] = "many"
    with pytest.raises(Exception, match=r"pages_viewed.*many"):
        registered.predict(leads)


def test_a_numbers_declared_placeholder_is_read_as_missing_and_other_text_is_not() -> None:
    from service.pyfunc import numbers, without_placeholders

    column = pd.Series([3, " N/A ", None, "7.5", "n/a"], dtype=object)
    read = numbers("pages_viewed", without_placeholders(column, frozenset({"n/a"})))
    assert read == [3.0, None, None, 7.5, None]
    with pytest.raises(Exception, match=r"pages_viewed.*N/A"):
        numbers("pages_viewed", without_placeholders(column, frozenset({"unknown"})))


def test_loading_verifies_the_bundle_checksum(trained: Trained, tmp_path: Path) -> None:
    mlflow.set_tracking_uri(trained.env.tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(CHAMPION_URI, dst_path=str(tmp_path)))
    (payload,) = (local / "artifacts").glob("*/bundle.joblib")
    payload.write_bytes(payload.read_bytes() + b"\0")
    with pytest.raises(Exception, match="checksum mismatch"):
        mlflow.pyfunc.load_model(str(local))


LOAD_WITHOUT_LEADSCORE = """
import importlib.util, json, sys
# leadscore is installed in this environment in editable mode: take that away, so only the model's code remains
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path[:] = [p for p in sys.path if p not in ("", ".") and "editable" not in p]
sys.path_importer_cache.clear()
assert importlib.util.find_spec("training") is None and importlib.util.find_spec("service") is None
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
scores = model.predict(pd.read_csv(sys.argv[2]))
import service
OURS = ("training", "service")
print(json.dumps({"probability": scores["probability"].tolist(), "code": service.__file__,
                  "files": sorted(m.__file__ for n, m in sys.modules.items() if n.split(".")[0] in OURS)}))
"""


def _module_level_imports(path: Path) -> set[str]:
    """The top-level packages a module imports when it loads (imports inside functions wait until called)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _requirement_closure(lines: list[str]) -> set[str]:
    """The distributions the model's requirements bring, with their own dependencies, as import-able names."""
    seen: set[str] = set()
    pending = [Requirement(line).name for line in lines if line and not line.startswith("#")]
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        pending += [Requirement(r).name for r in requires if "extra ==" not in r]
    return seen


def test_the_model_loads_with_its_own_code_and_requirements_only(trained: Trained, leads_csv: Path, tmp_path: Path):
    mlflow.set_tracking_uri(trained.env.tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(CHAMPION_URI, dst_path=str(tmp_path / "model")))
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_LEADSCORE, str(local), str(leads_csv)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"].startswith(str(local / "code"))
    expected = trained.bundle.predict_proba(pd.read_csv(leads_csv))
    np.testing.assert_allclose(report["probability"], expected, rtol=0, atol=1e-9)

    allowed = _requirement_closure((local / "requirements.txt").read_text().splitlines())
    providers = metadata.packages_distributions()
    imported = {name for path in report["files"] for name in _module_level_imports(Path(path))}
    used = {
        dist.lower().replace("_", "-")
        for module in imported
        for dist in providers.get(module, [])
        if module not in sys.stdlib_module_names and module not in ("training", "service")
    }
    assert "lightgbm" in used and "pandas" in used
    assert used - allowed == set(), f"imported but not required: {sorted(used - allowed)}"
