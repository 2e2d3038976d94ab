"""Just enough of the Dockerfile format for tests to read the real Dockerfile instead of repeating it."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class Instruction:
    """One instruction, continuation lines joined."""

    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of CMD, ENTRYPOINT, RUN or VOLUME, or None for the shell form."""
        return json.loads(self.args) if self.args.startswith("[") else None

    def flags(self) -> dict[str, str]:
        """Leading --name=value flags, e.g. COPY --from=build."""
        found = {}
        for word in shlex.split(self.args):
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found[name] = value
        return found

    def operands(self) -> list[str]:
        """The words after the flags (exec form or shell words)."""
        form = self.exec_form()
        if form is not None:
            return form
        return [word for word in shlex.split(self.args) if not word.startswith("--")]


@dataclass
class Stage:
    """One FROM and the instructions under it."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions with continuations joined and comments dropped, each with its first line number."""
    joined: list[tuple[int, str]] = []
    current, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not current:
            start = number
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        joined.append((start, current + stripped))
        current = ""
    return joined


def parse_dockerfile(path: Path) -> list[Stage]:
    """The stages of a Dockerfile, in order."""
    stages: list[Stage] = []
    for number, line in logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, args, number))
    return stages


def env_pairs(instruction: Instruction) -> list[tuple[str, str]]:
    """ENV key=value pairs (or the legacy `ENV key value` form), values not yet expanded."""
    words = shlex.split(instruction.args)
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [(key, value) for key, _, value in (word.partition("=") for word in words)]


def expand(text: str, env: dict[str, str]) -> str:
    """$NAME and ${NAME} from the environment built so far, as the builder expands them; unknown ones become ''."""
    return _VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), text)


def healthcheck_command(instruction: Instruction) -> list[str]:
    """The exec-form command after HEALTHCHECK's options."""
    _, _, command = instruction.args.partition(" CMD ")
    return json.loads(command.strip())
