"""End to end: erasing a lead through a real `leadscore serve` leaves nothing of it in the score database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import ModelsFolder
from tests.e2e.conftest import ADMIN_KEY, ServerFactory
from training.synthetic import generate_leads

BUDGET = 987_654.321  # a field value only the erased lead has


def _stored_text(path: Path) -> str:
    """Every value of every table in the SQLite file, as text (blobs decoded)."""
    with sqlite3.connect(path) as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        values = [value for table in tables for row in conn.execute(f"SELECT * FROM {table}") for value in row]
    return "\n".join(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def test_delete_route_erases_a_lead_and_keeps_its_batch_mates(
    start_server: ServerFactory, models_folder: ModelsFolder, tmp_path: Path
) -> None:
    frame = generate_leads(n=3, seed=61).drop(columns=["converted", "deal_value", "account_manager_assigned"])
    frame["created_at"] = frame["created_at"].astype(str)
    frame.loc[0, "stated_budget"] = BUDGET
    leads = frame.astype(object).where(frame.notna(), None).to_dict("records")
    target, mate = leads[0]["lead_id"], leads[1]["lead_id"]
    database = tmp_path / "scores.db"
    server = start_server(models_folder.champion, database_url=f"sqlite:///{database}")
    with server.client() as client, server.client(key=ADMIN_KEY) as admin:
        assert client.post("/v1/leads/score/batch", json={"leads": leads}).status_code == 200
        assert client.post(f"/v1/leads/{target}/outcome", json={"converted": True}).status_code == 200
        assert client.delete(f"/v1/leads/{target}").status_code == 403

        reply = admin.delete(f"/v1/leads/{target}")

        assert reply.status_code == 200, reply.text
        assert reply.json()["erased"]["scores"] == 1 and reply.json()["erased"]["outcomes"] == 1
        assert len(client.get(f"/v1/leads/{mate}/scores").json()["scores"]) == 1
        assert admin.delete(f"/v1/leads/{target}").status_code == 404
    stored = _stored_text(database)
    assert target not in stored and str(BUDGET) not in stored
    assert mate in stored and leads[2]["lead_id"] in stored
