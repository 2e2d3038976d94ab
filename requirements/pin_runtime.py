"""Print requirements/runtime.txt: leadscore's runtime dependencies and theirs, at the versions installed now.

Development tools (the ``dev`` extra) are left out, so the image installs only what the service runs. Run it
from the virtual environment whose versions the image should match:

    .venv/bin/python requirements/pin_runtime.py > requirements/runtime.txt
"""

from __future__ import annotations

from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HEADER = (
    "# Runtime dependencies of leadscore, pinned to the versions its development environment runs.\n"
    "# Installed by the Dockerfile; regenerate with: .venv/bin/python requirements/pin_runtime.py"
    " > requirements/runtime.txt\n"
)


def _wanted(requirement: Requirement, extras: frozenset[str]) -> bool:
    """A requirement applies when it has no marker, or its marker holds here for one of the requested extras."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in extras or {""})


def runtime_closure(root: str = "leadscore") -> dict[str, str]:
    """Every distribution ``root`` needs at run time, transitively, with its installed version."""
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(root, frozenset[str]())]
    while pending:
        name, extras = pending.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        distribution = metadata.distribution(name)
        if canonicalize_name(name) != canonicalize_name(root):
            pins[distribution.metadata["Name"]] = distribution.version
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if _wanted(requirement, extras):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return pins


def pinned_text(pins: dict[str, str]) -> str:
    """One ``name==version`` a line, sorted case-insensitively, under the header."""
    lines = [f"{name}=={pins[name]}" for name in sorted(pins, key=str.lower)]
    return HEADER + "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(pinned_text(runtime_closure()), end="")
