"""requirements/runtime.txt pins every runtime dependency of pyproject.toml, within its ranges, and no dev tool."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from training.bundle import PINNED_LIBRARIES

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "requirements" / "runtime.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!-]+)$")


def pins() -> dict[str, str]:
    """Canonical name → pinned version; every non-comment line must be an exact pin."""
    found = {}
    for number, line in enumerate(RUNTIME.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{RUNTIME.name} line {number}: {line!r} is not an exact name==version pin"
        name = canonicalize_name(match["name"])
        assert name not in found, f"{RUNTIME.name} pins {name} twice"
        found[name] = match["version"]
    return found


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


@pytest.mark.parametrize("line", project()["dependencies"])
def test_every_runtime_dependency_is_pinned_within_its_range(line: str) -> None:
    requirement = Requirement(line)
    pinned = pins()
    name = canonicalize_name(requirement.name)
    assert name in pinned, f"{requirement.name} is a runtime dependency but not pinned in {RUNTIME.name}"
    assert requirement.specifier.contains(pinned[name], prereleases=True), (
        f"{requirement.name}=={pinned[name]} is outside pyproject's range {requirement.specifier}"
    )


def test_no_development_tool_is_pinned() -> None:
    dev_only = {canonicalize_name(Requirement(line).name) for line in project()["optional-dependencies"]["dev"]}
    runtime = {canonicalize_name(Requirement(line).name) for line in project()["dependencies"]}
    leaked = (dev_only - runtime) & set(pins())
    assert not leaked, f"development tools pinned for the image: {sorted(leaked)}"


def test_pickled_libraries_match_the_training_environment() -> None:
    """A bundle loads only with the scikit-learn and LightGBM that wrote it: the image must run the same ones."""
    pinned = pins()
    for library in PINNED_LIBRARIES:
        installed = metadata.version(library)
        assert pinned[canonicalize_name(library)] == installed, (
            f"{library}: image pins {pinned[canonicalize_name(library)]}, this environment trains with {installed}; "
            f"regenerate with requirements/pin_runtime.py or install from the pins"
        )
