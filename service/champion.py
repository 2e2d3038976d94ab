"""Loading the champion bundle for serving: from the models folder or the MLflow registry, verified."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, TypeAdapter

from service.batch_decoder import BatchDecoder
from service.schemas import build_batch_validator, build_lead_model, build_lead_validator, ignored_fields
from service.scorer import Scorer
from service.settings import ServiceSettings
from training.bundle import Bundle, BundleError, load_bundle, smoke_test
from training.errors import LeadscoreError
from training.partial import partly_known_probabilities
from training.questions import QuestionRanker, answer_labels, question_text

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^@/]+)@(?P<alias>[\w-]+)$")


@dataclass(frozen=True)
class ServingModel:
    """One loaded model and everything derived from it; swapped as a whole on reload."""

    bundle: Bundle
    scorer: Scorer
    lead_model: type[BaseModel]
    validator: TypeAdapter
    batch_validator: TypeAdapter
    batch_decoder: BatchDecoder
    source: str
    ranker: QuestionRanker | None = None  # None for bundles trained before answer statistics were kept
    answer_labels: dict[str, list[str]] = field(default_factory=dict)  # per field, its answers in words
    question_texts: dict[str, str] = field(default_factory=dict)  # per field, the question a rep asks
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def version(self) -> str:
        return self.bundle.version


def champion_location(settings: ServiceSettings) -> str:
    return settings.model_uri or str(settings.model_dir)


def resolve_bundle_dir(settings: ServiceSettings) -> Path:
    """The directory of the current champion: the configured folder, or the registry alias's bundle artifacts."""
    if not settings.model_uri:
        return _inside_models_folder(Path(settings.model_dir), settings.allow_model_outside_models_dir)
    return _download_registered_bundle(settings.model_uri, settings)


def _inside_models_folder(model_dir: Path, allow_outside: bool) -> Path:
    """The champion link must lead into its own models folder: whoever can repoint it must not be able to
    make the service unpickle a file from anywhere on disk (LEADSCORE_ALLOW_MODEL_OUTSIDE_MODELS_DIR)."""
    if allow_outside:
        return model_dir
    target, folder = model_dir.resolve(), model_dir.absolute().parent.resolve()
    if not target.is_relative_to(folder):
        raise BundleError(
            f"{model_dir} leads to {target}, outside the models folder {folder}: refusing to load it "
            "(set LEADSCORE_ALLOW_MODEL_OUTSIDE_MODELS_DIR=true to allow it)"
        )
    return model_dir


def _download_registered_bundle(uri: str, settings: ServiceSettings) -> Path:
    import mlflow

    from training.tracking import BUNDLE_ARTIFACT_DIR, quiet_mlflow

    match = REGISTRY_URI.match(uri)
    if not match:
        raise LeadscoreError(f"LEADSCORE_MODEL_URI {uri!r} must look like models:/NAME@ALIAS")
    quiet_mlflow()
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    try:
        version = client.get_model_version_by_alias(match["name"], match["alias"])
    except Exception as exc:
        raise LeadscoreError(
            f"no model at {uri} in {settings.mlflow_tracking_uri}: {str(exc).splitlines()[0]}"
        ) from None
    cache = registry_cache_dir(settings, match["name"], version.version)
    if not (cache / "bundle.json").is_file():
        staging = cache.with_name(cache.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        client.download_artifacts(version.run_id, BUNDLE_ARTIFACT_DIR, str(staging))
        shutil.rmtree(cache, ignore_errors=True)
        (staging / BUNDLE_ARTIFACT_DIR).rename(cache)
        shutil.rmtree(staging, ignore_errors=True)
    return cache


def registry_cache_dir(settings: ServiceSettings, name: str, registered_version: str) -> Path:
    """Where a registered version's bundle is kept once downloaded."""
    return Path(settings.model_dir).parent / ".registry" / f"{name}-v{registered_version}"


def load_serving_model(settings: ServiceSettings) -> ServingModel:
    """Verify checksum and library versions, smoke-score the examples, then build the fast path."""
    directory = resolve_bundle_dir(settings)
    bundle = load_bundle(directory)
    smoke_test(bundle)
    scorer = Scorer(bundle, settings.top_reasons)
    _prove_fast_path(bundle, scorer)
    ranker = question_ranker(bundle, scorer)
    return ServingModel(
        bundle=bundle,
        scorer=scorer,
        lead_model=build_lead_model(bundle, settings.max_string_length),
        validator=build_lead_validator(bundle, settings.max_string_length),
        batch_validator=build_batch_validator(bundle, settings.max_string_length),
        batch_decoder=BatchDecoder(bundle, ignored_fields(bundle), scorer.read_fields, settings.max_string_length),
        source=str(directory.resolve()),
        ranker=ranker,
        answer_labels={a.name: answer_labels(a, bundle.wording) for a in ranker.answers} if ranker else {},
        question_texts={name: question_text(name, bundle.wording) for name in ranker.fields} if ranker else {},
    )


def question_ranker(bundle: Bundle, scorer: Scorer) -> QuestionRanker | None:
    """The next-question ranker over the serving fast path; None for a bundle without answer statistics."""
    statistics = bundle.reference.get("answers")
    if statistics is None:
        return None
    askable = bundle.wording.askable if bundle.wording is not None else None
    probabilities = partly_known_probabilities(scorer.probabilities, statistics, bundle.fields)
    return QuestionRanker(bundle.fields, statistics, probabilities, askable or (lambda name: True))


def _prove_fast_path(bundle: Bundle, scorer: Scorer) -> None:
    """The fast path must reproduce the pipeline on the bundle's own examples before it serves anything."""
    import numpy as np

    expected = np.asarray(bundle.example_probabilities)
    got = np.array([result["probability"] for result in scorer.score(bundle.examples, reasons="none")])
    if got.shape != expected.shape or np.max(np.abs(got - expected)) > 1e-9:
        raise BundleError(f"bundle {bundle.version}: the fast scoring path disagrees with the pipeline; refusing it")
