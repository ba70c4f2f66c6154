"""The contract between the agent's engine and its handlers.

A handler turns part of a persona into changes on the machine, in three steps that never
mix (read → decide → change, as pyinfra's facts and operations):

* **read**: everything a handler knows about the machine comes from :class:`Context`
  (``ctx.read(path)`` and friends), which reads under the ``--root`` directory;
* **decide**: :meth:`Handler.plan` returns a :class:`HandlerPlan` (files as they should be,
  operations to run, notes on what is pending or stored without effect) and
  :meth:`Handler.capture` turns the user's edits of managed files into customizations;
* **change**: only the engine writes, through its journal, so every change can be undone
  and ``mien plan`` is the same computation without the last step.

Handlers are registered through the ``mien.handlers`` entry-point group; the built-in ones
are registered the same way (see ``pyproject.toml``), so a site adds its own without
forking. Used by the engine (:mod:`mien.agent.engine_base`) and every module in
:mod:`mien.agent.handlers`.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from mien.agent import safepath

# Part of this module's contract (handlers and plugins import it from here).
from mien.agent.handlers.errors import HandlerError as HandlerError  # noqa: PLC0414
from mien.agent.handlers.programs import RunAs, child_env, run_in_root
from mien.agent.handlers.users import UserInfo

if TYPE_CHECKING:  # the router imports this module on every `mien exec`: keep pydantic out
    from collections.abc import Collection, Sequence

    from mien.protocol.outcomes import Outcome, Reason, SettingOutcome
    from mien.spec.models import Persona


@dataclass(frozen=True, slots=True)
class FileState:
    """A file as it is or should be: ``content`` None means the file does not exist."""

    content: bytes | None
    mode: int = 0o644
    uid: int = 0
    gid: int = 0

    @property
    def exists(self) -> bool:
        return self.content is not None


ABSENT = FileState(None)


@dataclass(frozen=True, slots=True)
class FileSpec:
    """A file a handler manages: its desired state, and private ``meta`` the handler wants
    back next time (e.g. which keys of a shared config file it owns), JSON-serialisable.

    ``desired`` None means "no longer managed: put it back as it was before mien" and is
    only needed when a handler must compute that itself (a shared file from which only its
    own keys are removed); for whole files the engine restores them by default.
    """

    path: str
    desired: FileState | None
    meta: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
    setting: str = ""  # persona key path this file realises, for status ("os_settings.theme")
    # Non-empty for a whole text file: a user's edit no key explains is kept whole, for
    # this path and its owner, under this setting (see mien.agent.kept_files).
    capture_as: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    """A change that is not a file write (install a package, an editor extension).

    ``data`` is JSON-serialisable: after a crash the engine calls
    ``handler.revert(ctx, data)`` with nothing else to go on.
    """

    handler: str
    key: str
    summary: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Note:
    """What became of a setting: an :class:`Outcome` (applied, pending, stored, failed)
    with a :class:`Reason` (what it waits for, why it is not applied) and a sentence.

    The status must be an :class:`Outcome`; a bare string is refused, so the set of
    outcomes cannot grow by a typo. The reason defaults to the outcome's usual one.
    """

    setting: str
    status: Outcome
    message: str
    reason: Reason | None = None

    def __post_init__(self) -> None:
        from mien.protocol.outcomes import ALLOWED, DEFAULT_REASON, Outcome

        if not isinstance(self.status, Outcome):
            raise TypeError(f"{self.setting}: outcome {self.status!r} is not an Outcome")
        reason = self.reason if self.reason is not None else DEFAULT_REASON[self.status]
        if reason not in ALLOWED[self.status]:
            raise ValueError(f"{self.setting}: {self.status} cannot have reason {reason}")
        object.__setattr__(self, "reason", reason)

    def outcome(self) -> SettingOutcome:
        from mien.protocol.outcomes import SettingOutcome

        assert self.reason is not None
        return SettingOutcome(
            setting=self.setting, status=self.status, reason=self.reason, message=self.message
        )


@dataclass
class HandlerPlan:
    """What one handler decided."""

    files: list[FileSpec] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Captured:
    """A user edit of a managed file, kept as a customization (key path → value)."""

    key: str
    value: Any
    source: str  # the file it was found in


@dataclass(frozen=True, slots=True)
class ManagedRecord:
    """What the last apply wrote to a path: by which handler, its hash and meta."""

    path: str
    handler: str
    written_hash: str | None
    meta: Mapping[str, Any]
    setting: str = ""
    capture_as: str = ""


class Context:
    """Read-only view of the machine under ``root`` for one apply.

    All paths given to and returned from a context are absolute paths *on the machine*
    (``/etc/profile.d/mien.sh``); :meth:`host_path` maps them under the root.

    While a plan is computed, reads are cached (the machine does not change meanwhile);
    the engine calls :meth:`stop_caching` before ``perform``/``revert``/``finish``, so
    operations always see the disk as it is.
    """

    def __init__(
        self,
        root: Path,
        user: UserInfo,
        persona_name: str,
        managed: Mapping[str, ManagedRecord] | None = None,
        env: Mapping[str, str] | None = None,
        blobs: Callable[[str], bytes] | None = None,
        written: Mapping[str, tuple[int, int, int]] | None = None,
    ) -> None:
        self.root = root
        self.user = user
        self.persona_name = persona_name
        self.managed: Mapping[str, ManagedRecord] = managed or {}
        self.env: Mapping[str, str] = env if env is not None else os.environ
        self._blobs = blobs
        self._written = written or {}  # the mode, uid and gid mien last gave each file
        self._root = str(root).rstrip("/")
        # Planning reads the same files several times (drift, ownership, merge, diff) from
        # a machine that does not change meanwhile; the engine turns this off before it
        # starts changing things.
        self.caching = True
        self._reads: dict[str, FileState] = {}
        self._which: dict[str, str | None] = {}
        self._processes: dict[frozenset[str], bool] = {}
        self._outputs: dict[tuple[Any, ...], str] = {}
        # Every path the plan looked at, for the no-op record (mien.agent.noop).
        self.observed: set[str] = set()
        # The persona as its author wrote it, without the user's customizations (None: there
        # are none). A handler that sets something both for the user and machine-wide takes
        # the machine-wide part from here: a user's customization stays the user's.
        self.authored: Callable[[], Persona] | None = None

    def host_path(self, path: str) -> Path:
        """``/etc/x`` → ``ROOT/etc/x``; refuses paths that would leave the root."""
        if not path.startswith("/"):
            raise HandlerError(f"{path!r} is not an absolute path")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise HandlerError(f"{path!r}: '..' is not allowed")
        host = Path(self._root + "/" + "/".join(parts)) if parts else self.root
        if self.caching:
            self.observed.add(str(host))
        return host

    def stop_caching(self) -> None:
        """From now on every read goes to the disk (the machine is being changed)."""
        self.caching = False
        self._reads.clear()
        self._which.clear()
        self._processes.clear()
        self._outputs.clear()

    def expand(self, path: str) -> str:
        """Fill in ``{user}`` and ``{home}`` for the persona user."""
        return path.replace("{home}", self.user.home).replace("{user}", self.user.name)

    def read(self, path: str) -> FileState:
        """The file at ``path`` as it is now (``ABSENT`` when missing)."""
        if self.caching:
            found = self._reads.get(path)
            if found is None:
                found = self._reads[path] = self._read(path)
            return found
        return self._read(path)

    def _read(self, path: str) -> FileState:
        # Never through a link (a user's ~/.config/app.json -> /root/secret.json would
        # hand them root's file) and never more than safepath.READ_CAP bytes.
        self.host_path(path)
        try:
            found = safepath.read(self.root, path)
        except (safepath.UnsafePath, safepath.TooLarge) as exc:
            raise HandlerError(str(exc)) from None
        if found is None:
            return ABSENT
        content, st = found
        return FileState(content, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)

    def exists(self, path: str) -> bool:
        return self.host_path(path).exists()

    def last_written(self, path: str) -> bytes | None:
        """The bytes mien wrote to ``path`` in the last apply (None: not managed or absent)."""
        record = self.managed.get(path)
        if record is None or record.written_hash is None or self._blobs is None:
            return None
        return self._blobs(record.written_hash)

    def ownership(self, path: str, current: FileState) -> tuple[int, int, int] | None:
        """The (mode, uid, gid) a file keeps unless the persona says otherwise: what mien last
        gave it if it manages it (so a chmod or chown alone is put right), else the existing
        file's; None for a new file."""
        if path in self.managed and path in self._written:
            return self._written[path]
        return (current.mode, current.uid, current.gid) if current.exists else None

    def previous(self, handler: str) -> dict[str, ManagedRecord]:
        """The files ``handler`` managed after the last apply, by path."""
        return {p: r for p, r in self.managed.items() if r.handler == handler}

    def which(self, command: str) -> str | None:
        """Where ``command`` is installed inside the root (searching a standard PATH).

        Symbolic links are followed *inside* the root (``/usr/bin/code`` →
        ``/usr/share/code/bin/code`` means ``ROOT/usr/share/code/bin/code``), never on the host.
        """
        if self.caching and command in self._which:
            return self._which[command]
        found = self._which_now(command)
        if self.caching:
            self._which[command] = found
        return found

    def _which_now(self, command: str) -> str | None:
        for d in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"):
            path = f"{d}/{command}"
            target = self._resolve_in_root(path)
            if target is not None and target.is_file() and os.access(target, os.X_OK):
                return path
        return None

    def _resolve_in_root(self, path: str, depth: int = 0) -> Path | None:
        if depth > 16:
            return None
        try:
            host = self.host_path(path)
        except HandlerError:
            return None
        if not host.is_symlink():
            # A parent directory may itself be a link (/bin → usr/bin on merged-/usr).
            parent = host.parent
            if parent != self.root and parent.is_symlink():
                resolved_parent = self._resolve_in_root(
                    "/" + str(parent.relative_to(self.root)), depth + 1
                )
                return None if resolved_parent is None else resolved_parent / host.name
            return host if host.exists() else None
        link = os.readlink(host)
        if not link.startswith("/"):
            link = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
        return self._resolve_in_root(link, depth + 1)

    def process_running(self, names: Collection[str]) -> bool:
        """Whether a process with one of these names runs on this machine.

        Only the running system has processes: under any other root the answer is False.
        """
        if self.root != Path("/"):
            return False
        key = frozenset(names)
        if self.caching and key in self._processes:
            return self._processes[key]
        import psutil

        found = any((p.info.get("name") or "") in key for p in psutil.process_iter(["name"]))
        if self.caching:
            self._processes[key] = found
        return found

    def inspect(
        self,
        argv: Sequence[str],
        *,
        user: RunAs | None = None,
        timeout: float = 120,
        what: str = "",
    ) -> str:
        """The output of a program that only *reports* on the root (``code
        --list-extensions``), run inside it (as ``user`` when given) and cached while a plan is
        computed. Failure raises :class:`HandlerError` naming the command."""
        key = (tuple(argv), user)
        if self.caching and key in self._outputs:
            return self._outputs[key]
        proc = run_in_root(
            self.root,
            argv,
            user=user,
            env=child_env(self.env, user),
            timeout=timeout,
            what=what,
        )
        if self.caching:
            self._outputs[key] = proc.stdout
        return proc.stdout

    def user_ids(self) -> tuple[int, int]:
        return self.user.uid, self.user.gid


@runtime_checkable
class Handler(Protocol):
    """One concern of a persona. Implement ``plan``; the rest has defaults in
    :class:`BaseHandler`.

    A handler may also set ``order`` (an int, 50 when absent): its step in the run, see
    :mod:`mien.agent.registry`. It is not a member here so that a plugin without one still
    satisfies the protocol."""

    name: ClassVar[str]
    settings: ClassVar[tuple[str, ...]]
    """Persona key paths this handler gives effect to (``"os_settings.theme"``, or a whole
    field such as ``"environment_variables"``). Keys no handler claims are stored in
    ``/etc/mien/settings.json`` and reported as "stored, not applied"."""

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan: ...

    def capture(self, ctx: Context, persona: Persona) -> list[Captured]: ...

    def perform(self, ctx: Context, data: Mapping[str, Any]) -> None: ...

    def revert(self, ctx: Context, data: Mapping[str, Any]) -> None: ...

    def finish(self, ctx: Context, data: Mapping[str, Any]) -> None: ...


class BaseHandler:
    """Defaults: no captures, and operations are not supported."""

    name: ClassVar[str] = ""
    settings: ClassVar[tuple[str, ...]] = ()
    order: ClassVar[int] = 50  # the step it runs in (mien.agent.registry.run_order)

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        raise NotImplementedError

    def capture(self, ctx: Context, persona: Persona) -> list[Captured]:
        return []

    def perform(self, ctx: Context, data: Mapping[str, Any]) -> None:
        raise HandlerError(f"handler {self.name!r} has no operations")

    def revert(self, ctx: Context, data: Mapping[str, Any]) -> None:
        raise HandlerError(f"handler {self.name!r} has no operations")

    def finish(self, ctx: Context, data: Mapping[str, Any]) -> None:
        """Called after commit (e.g. to delete a backup the operation kept for revert)."""
