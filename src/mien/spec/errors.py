"""Problems found in persona documents, and the one exception that carries them.

Every part of mien that reads a persona (the CLI, the agent, the server) reports bad input
the same way: a list of :class:`Problem`, each naming the file, line, column and field path,
formatted as ``FILE:LINE:COL: field.path: message``. Nothing here raises for a single
problem; loaders collect all of them so a user fixes a document in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]
PathPart = str | int
FieldPath = tuple[PathPart, ...]


def format_path(path: Sequence[PathPart]) -> str:
    """Render a field path the way users write it: ``adaptation_rules[0].when``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out or "(document)"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or worth a warning) in one document."""

    source: str
    line: int
    column: int
    path: FieldPath
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        if self.line == 0:  # no position: a file problem, or a layer without text
            where = f"{format_path(self.path)}: " if self.path else ""
            return f"{self.source}: {where}{prefix}{self.message}"
        return f"{self.source}:{self.line}:{self.column}: {format_path(self.path)}: {prefix}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "line": self.line,
            "column": self.column,
            "path": format_path(self.path),
            "message": self.message,
            "severity": self.severity,
        }


class SpecError(Exception):
    """A persona document (or a composition of them) is not valid.

    Carries every problem found, errors first, in document order.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(
            problems, key=lambda p: (p.severity != "error", p.source, p.line, p.column)
        )
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid persona")

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


class PersonaNotFound(SpecError):
    """A persona named by ``extends`` (or on the command line) is not in any search path."""
