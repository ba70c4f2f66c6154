"""The command router: a persona's ``command_overrides`` and ``restricted_commands`` as a
routing table, and the decision it makes for one command line (run by
:mod:`mien.agent.router_exec`).

The table is a small immutable value. The commands handler builds it from a persona and
writes it to ``/etc/mien/routes.json``; ``mien exec`` and the agent's remote commands read
it back with :func:`load_table` (plain :mod:`json`, no pydantic, so ``mien exec`` starts
fast). :meth:`RoutingTable.route` is pure: an ordered policy of small rules, each of which
either decides (with a reason) or passes, and a command no rule claims passes through.
Matching is by the basename of ``argv[0]``, so ``/usr/bin/git`` is routed like ``git``.

:func:`mien.agent.router_exec.run` performs a decision, audited through the state
database (or, for a caller who cannot write it, the user-writable command log): ``mien
exec`` replaces its own process with the command; remote commands (``capture=True``) run as
a subprocess with a timeout and capped output. Interactive shells get the same table through the shims that
:mod:`mien.agent.handlers.commands` generates; both sides share the message formats here.

``MIEN_ROUTED`` (``:``-separated command names) marks overrides in progress, so a
replacement that runs the overridden command again (``git`` → a wrapper that calls ``git``)
reaches the real command instead of looping back into its own override.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from mien.spec.models import Persona

ROUTES_PATH = "/etc/mien/routes.json"
SHIMS_DIR = "/usr/local/lib/mien/shims"
OVERRIDES_DIR = "/usr/local/lib/mien/overrides"
COMMANDS_LOG_DIR = "/var/log/mien/commands"  # one <uid>.jsonl per account (see command_log)
LEGACY_COMMANDS_LOG = "/var/log/mien/commands.jsonl"  # shared by all users before: root-only now
ROUTED_ENV = "MIEN_ROUTED"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

REFUSED = 126  # also: found but cannot be executed (the shells' convention)
NOT_FOUND = 127
TIMED_OUT = 124  # as timeout(1)
OUTPUT_LIMIT = 64 * 1024  # bytes kept of each of stdout and stderr of a remote command

_FORMAT = 1
_GLOB = frozenset("*?[")


class RouteError(Exception):
    """The routing table cannot be built or read; the message names the field or file."""


def host_path(root: Path, path: str) -> Path:
    """``/etc/x`` on the machine → ``ROOT/etc/x``."""
    return root / path.lstrip("/")


def commands_log(uid: int) -> str:
    """The command log the shims and ``mien exec`` of ``uid`` append to."""
    return f"{COMMANDS_LOG_DIR}/{int(uid)}.jsonl"


def refusal_message(command: str, persona: str | None) -> str:
    """The one refusal message, shared by ``mien exec``, remote commands and the shims."""
    return f"'{command}' is restricted by persona '{persona}'"


def is_pattern(name: str) -> bool:
    return any(c in _GLOB for c in name)


# --- the table ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replacement:
    """What an overridden command runs instead: a command line, or an inline script that
    mien writes to ``OVERRIDES_DIR/<command>`` (``argv`` is then that one path)."""

    argv: tuple[str, ...]
    inline: bool = False
    script: str | None = None  # the inline script's text; only known when built from a persona

    @classmethod
    def parse(cls, command: str, value: str) -> Replacement:
        """A ``command_overrides`` value: ``#!``/multi-line text is an inline script (run
        by ``/bin/sh`` when it has no ``#!`` line), anything else a shlex-split command line."""
        where = f"command_overrides.{command}"
        if value.startswith("#!") or "\n" in value:
            text = value if value.startswith("#!") else "#!/bin/sh\n" + value
            text = text if text.endswith("\n") else text + "\n"
            return cls((f"{OVERRIDES_DIR}/{command}",), inline=True, script=text)
        try:
            argv = tuple(shlex.split(value))
        except ValueError as exc:
            raise RouteError(f"{where}: {value!r} is not a valid command line: {exc}") from None
        if not argv:
            raise RouteError(f"{where}: the replacement command line is empty")
        head = argv[0]
        if "=" in head and "/" not in head.split("=", 1)[0]:
            raise RouteError(
                f"{where}: {head!r} looks like an environment assignment; "
                f"write '/usr/bin/env {value}' to set variables for the replacement"
            )
        if "/" in head and not head.startswith("/"):
            raise RouteError(
                f"{where}: {head!r} must be an absolute path or a command name found on PATH"
            )
        return cls(argv)

    def may_reenter(self, command: str) -> bool:
        """Whether running this can route back to ``command`` (a wrapper, ``env command``).
        A replacement that *is* ``command`` (``git -c x``) is found directly, past the
        shims, so it needs no ``MIEN_ROUTED`` mark, which would otherwise reach whatever
        that real command runs."""
        return self.inline or os.path.basename(self.argv[0]) != command

    def describe(self) -> str:
        return f"inline script {self.argv[0]}" if self.inline else shlex.join(self.argv)


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """One persona's routing table. ``restricted`` holds names and fnmatch patterns."""

    persona: str | None
    overrides: Mapping[str, Replacement] = field(default_factory=dict)
    restricted: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))
        object.__setattr__(self, "restricted", tuple(self.restricted))

    @property
    def empty(self) -> bool:
        return not self.overrides and not self.restricted

    @classmethod
    def from_persona(cls, persona: Persona) -> RoutingTable:
        overrides = {}
        for command, value in persona.command_overrides.items():
            if is_pattern(command):
                raise RouteError(
                    f"command_overrides.{command}: an override needs an exact command name, "
                    "not a pattern (patterns are for restricted_commands)"
                )
            overrides[command] = Replacement.parse(command, value)
        return cls(persona.name, overrides, tuple(persona.restricted_commands))

    def restriction_for(self, command: str) -> str | None:
        """The first restricted name or pattern that ``command`` matches."""
        for pattern in self.restricted:
            if fnmatch.fnmatchcase(command, pattern):
                return pattern
        return None

    def route(self, argv: Sequence[str], routed: frozenset[str] = frozenset()) -> Decision:
        """Decide what running ``argv`` means under this table. ``routed`` are the commands
        whose override is already in progress (from ``MIEN_ROUTED``)."""
        if not argv or not os.path.basename(argv[0]):
            raise RouteError("no command given")
        command = os.path.basename(argv[0])
        args = tuple(argv)
        for rule in POLICY:
            decision = rule.decide(self, command, args, routed)
            if decision is not None:
                return decision
        if self.persona is None:
            reason = f"no persona routes commands here: '{command}' runs as is"
        else:
            reason = f"no rule of persona '{self.persona}' matches '{command}'"
        return PassThrough(command, args, reason)

    # --- routes.json ---

    def to_json(self) -> str:
        data = {
            "format": _FORMAT,
            "persona": self.persona,
            "overrides": {
                name: {"argv": list(r.argv), "inline": r.inline}
                for name, r in sorted(self.overrides.items())
            },
            "restricted": list(self.restricted),
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> RoutingTable:
        """Parse a routes file; every problem names ``source`` and says how to fix it."""
        fix = "re-apply the persona (mien apply) to rewrite it"
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RouteError(f"{source}: not valid JSON ({exc}); {fix}") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise RouteError(f"{source}: not a routing table of format {_FORMAT}; {fix}")
        persona, raw_overrides, restricted = (
            data.get("persona"),
            data.get("overrides"),
            data.get("restricted"),
        )
        if not (persona is None or isinstance(persona, str)):
            raise RouteError(f"{source}: 'persona' must be a string; {fix}")
        if not isinstance(raw_overrides, dict):
            raise RouteError(f"{source}: 'overrides' must be an object; {fix}")
        if not (isinstance(restricted, list) and all(isinstance(r, str) for r in restricted)):
            raise RouteError(f"{source}: 'restricted' must be a list of names; {fix}")
        overrides = {}
        for name, entry in raw_overrides.items():
            argv = entry.get("argv") if isinstance(entry, dict) else None
            if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
                raise RouteError(
                    f"{source}: overrides.{name}.argv must be a list of strings; {fix}"
                )
            overrides[name] = Replacement(tuple(argv), inline=bool(entry.get("inline")))
        return cls(persona, overrides, tuple(restricted))


def load_table(root: Path) -> RoutingTable | None:
    """The table in ``ROOT/etc/mien/routes.json``; None when no persona has written one."""
    path = host_path(root, ROUTES_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise RouteError(f"{path}: cannot be read ({exc})") from None
    return RoutingTable.from_json(text, str(path))


# --- decisions and the rules that make them ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refuse:
    command: str
    pattern: str  # the restricted name or pattern it matched
    reason: str
    status: int = REFUSED


@dataclass(frozen=True, slots=True)
class Override:
    command: str
    argv: tuple[str, ...]  # the replacement's command line followed by the original arguments
    replacement: Replacement
    reason: str


@dataclass(frozen=True, slots=True)
class PassThrough:
    command: str
    argv: tuple[str, ...]
    reason: str
    reentered: bool = False  # the command's own override runs it (ends the MIEN_ROUTED chain)


Decision = Refuse | Override | PassThrough


class Rule(Protocol):
    name: ClassVar[str]

    def decide(
        self, table: RoutingTable, command: str, argv: tuple[str, ...], routed: frozenset[str]
    ) -> Decision | None: ...


class Restricted:
    """A restricted command is refused, whatever else applies (checked first)."""

    name: ClassVar[str] = "restricted"

    def decide(
        self, table: RoutingTable, command: str, argv: tuple[str, ...], routed: frozenset[str]
    ) -> Decision | None:
        pattern = table.restriction_for(command)
        if pattern is None:
            return None
        return Refuse(command, pattern, refusal_message(command, table.persona))


class Reentered:
    """An override's replacement that runs the overridden command again gets the real one."""

    name: ClassVar[str] = "reentered"

    def decide(
        self, table: RoutingTable, command: str, argv: tuple[str, ...], routed: frozenset[str]
    ) -> Decision | None:
        if command in table.overrides and command in routed:
            reason = f"'{command}' is run by its own override: the real command runs"
            return PassThrough(command, argv, reason, reentered=True)
        return None


class Overridden:
    """An overridden command runs its replacement with the same arguments."""

    name: ClassVar[str] = "overridden"

    def decide(
        self, table: RoutingTable, command: str, argv: tuple[str, ...], routed: frozenset[str]
    ) -> Decision | None:
        replacement = table.overrides.get(command)
        if replacement is None:
            return None
        reason = (
            f"'{command}' is overridden by persona '{table.persona}': runs {replacement.describe()}"
        )
        return Override(command, replacement.argv + argv[1:], replacement, reason)


POLICY: tuple[Rule, ...] = (Restricted(), Reentered(), Overridden())


def routed_from(env: Mapping[str, str]) -> frozenset[str]:
    return frozenset(n for n in env.get(ROUTED_ENV, "").split(":") if n)


# --- running a decision -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Completed:
    """How a routed command ended. ``message`` is mien's own (refusal, not found)."""

    decision: Decision
    status: int
    message: str = ""
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_dropped: int = 0  # bytes beyond the cap that were read and thrown away
    stderr_dropped: int = 0
    timed_out: bool = False
    duration: float = 0.0
    audited: bool = True

    def report(self) -> dict[str, Any]:
        """JSON-ready result for the server, saying plainly what was cut."""

        def text(data: bytes, dropped: int) -> str:
            out = data.decode("utf-8", errors="replace")
            if dropped:
                out += f"\n[mien: output truncated: {dropped} more bytes not kept]\n"
            return out

        return {
            "status": self.status,
            "decision": type(self.decision).__name__.lower(),
            "reason": self.decision.reason,
            "message": self.message,
            "stdout": text(self.stdout, self.stdout_dropped),
            "stderr": text(self.stderr, self.stderr_dropped),
            "truncated": bool(self.stdout_dropped or self.stderr_dropped),
            "timed_out": self.timed_out,
            "duration": round(self.duration, 3),
        }
