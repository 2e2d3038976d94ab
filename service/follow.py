"""Where the champion points right now, found without loading it: what polling and the model card compare against."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.champion import REGISTRY_URI, registry_cache_dir
from service.settings import ServiceSettings
from training.bundle import read_sidecar
from training.errors import LeadscoreError

log = logging.getLogger("leadscore.service")
BUNDLE_VERSION_TAG = "leadscore.bundle_version"


@dataclass(frozen=True)
class ChampionPointer:
    """The directory a champion would be served from (a loaded model's ``source``) and its version, if known."""

    location: str
    version: str | None


def champion_pointer(settings: ServiceSettings) -> ChampionPointer | None:
    """The champion the configured link or registry alias names now; None when nothing is there to serve."""
    if settings.model_uri:
        return _registry_pointer(settings.model_uri, settings)
    return _folder_pointer(Path(settings.model_dir))


def champion_pointer_or_none(settings: ServiceSettings) -> ChampionPointer | None:
    """For reads that must answer anyway: a broken link or an unreachable registry is just "unknown"."""
    try:
        return champion_pointer(settings)
    except Exception as exc:  # whatever the registry raises, the caller's reply must not fail
        log.debug("cannot read the champion at %s: %s", settings.model_uri or settings.model_dir, exc)
        return None


def _folder_pointer(model_dir: Path) -> ChampionPointer | None:
    target = Path(os.path.realpath(model_dir))
    sidecar = target / "bundle.json"
    try:
        stamp = sidecar.stat().st_mtime_ns
    except OSError:
        return None
    return ChampionPointer(str(target), _sidecar_version(str(target), stamp))


_versions_seen: dict[tuple[str, int], str | None] = {}


def _sidecar_version(directory: str, stamp: int) -> str | None:
    """The sidecar is read once per directory and modification, not on every check."""
    key = (directory, stamp)
    if key not in _versions_seen:
        try:
            version = read_sidecar(Path(directory)).get("version")
        except LeadscoreError:
            version = None
        if len(_versions_seen) > 64:
            _versions_seen.clear()
        _versions_seen[key] = version
    return _versions_seen[key]


def _registry_pointer(uri: str, settings: ServiceSettings) -> ChampionPointer | None:
    import mlflow

    from training.tracking import quiet_mlflow

    match = REGISTRY_URI.match(uri)
    if not match:
        raise LeadscoreError(f"LEADSCORE_MODEL_URI {uri!r} must look like models:/NAME@ALIAS")
    quiet_mlflow()
    registered = mlflow.MlflowClient(settings.mlflow_tracking_uri).get_model_version_by_alias(
        match["name"], match["alias"]
    )
    cache = registry_cache_dir(settings, match["name"], registered.version)
    return ChampionPointer(str(cache.resolve()), (registered.tags or {}).get(BUNDLE_VERSION_TAG))


def pickup_sentence(interval_s: float) -> str:
    """When a newly promoted champion starts serving."""
    if interval_s > 0:
        return f"within {interval_s:g} s (LEADSCORE_RELOAD_INTERVAL_S)"
    return "after a restart or POST /v1/admin/reload (LEADSCORE_RELOAD_INTERVAL_S=0: polling is off)"


def champion_fields(settings: ServiceSettings, serving_version: str, serving_source: str) -> dict[str, Any]:
    """The champion beside the serving model, and a notice whenever the two differ."""
    pointer = champion_pointer_or_none(settings)
    differs = pointer is not None and pointer.location != serving_source
    champion = pointer.version if pointer else None
    notice = None
    if differs:
        notice = (
            f"serving {serving_version}, champion {champion or 'unknown'}: "
            f"the champion is served {pickup_sentence(settings.reload_interval_s)}"
        )
    return {"champion_version": champion, "serving_champion": not differs, "champion_notice": notice}
