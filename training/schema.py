"""The input schema: what a lead sent for scoring may contain, learned from the training data."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.model import LeadEncoder, numeric_values


@dataclass(frozen=True)
class FieldSchema:
    """One lead field: its kind, allowed categories or observed range, and what it means."""

    name: str
    kind: str  # numeric | boolean | categorical
    categories: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    missing_share: float = 0.0
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def input_schema(
    frame: pd.DataFrame, kinds: dict[str, str], encoder: LeadEncoder, descriptions: dict[str, str]
) -> list[FieldSchema]:
    """A schema entry per model field, in the pipeline's field order."""
    fields = []
    for name, kind in kinds.items():
        column = frame[name]
        minimum = maximum = None
        if kind == "numeric":
            values = numeric_values(column)
            minimum, maximum = float(np.nanmin(values)), float(np.nanmax(values))
        fields.append(
            FieldSchema(
                name=name,
                kind=kind,
                categories=list(encoder.categories_[name]) if kind == "categorical" else None,
                minimum=minimum,
                maximum=maximum,
                missing_share=float(column.isna().mean()),
                description=descriptions.get(name),
            )
        )
    return fields
