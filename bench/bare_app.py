"""The baseline for bench/serve.py: a bare FastAPI POST that validates the same lead and returns a constant."""

import os
from typing import Any

from fastapi import FastAPI, Request

from service.schemas import build_lead_model
from training.bundle import load_bundle

CONSTANT = {"probability": 0.5, "grade": "C"}


def create_bare_app() -> FastAPI:
    bundle = load_bundle(os.environ["LEADSCORE_MODEL_DIR"])
    lead_model = build_lead_model(bundle)
    app = FastAPI()

    @app.post("/bare")
    async def bare(lead: lead_model) -> dict[str, Any]:  # type: ignore[valid-type]
        return CONSTANT

    @app.post("/bare/batch")
    async def bare_batch(request: Request) -> dict[str, Any]:
        await request.body()
        return CONSTANT

    @app.get("/readyz")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    return app
