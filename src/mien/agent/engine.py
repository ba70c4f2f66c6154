"""The agent's engine: plan, apply, switch, customize and roll back personas on one root.

Every public method takes the root's lock, first recovers whatever a dead process left
(:func:`mien.agent.transaction.recover`), then works in three steps: resolve the persona
(extends, overlays, the user's customizations, locks), decide (drift capture and the plan,
:mod:`mien.agent.planner`), and only then change (:mod:`mien.agent.transaction`).

Used by the CLI (``mien plan|apply|status|history|rollback|customize``) and by the agent's
sync loop, which applies documents received from the server with :meth:`Engine.apply_data`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mien.agent import kept_files, registry, sources, state_check
from mien.agent.handlers.base import Context, Handler, HandlerError, UserInfo, lookup_user
from mien.agent.locking import STATE_DIR
from mien.agent.outcomes import ApplyResult, Cancelled, EngineError, Refused, Status
from mien.agent.plan import Plan
from mien.agent.planner import PlanError, Target, build_plan, engine_notes, find_drift
from mien.agent.sources import Source
from mien.agent.state import DB_NAME, HistoryEntry, State, exclusive
from mien.agent.state_check import NeedsAttention, StateDamaged
from mien.agent.transaction import ApplyFailed, CrashPoints, execute, recover
from mien.protocol.outcomes import from_stored
from mien.spec.catalog import Catalog
from mien.spec.compose import Resolved, locking, parse_key
from mien.spec.errors import SpecError
from mien.spec.models import Persona

DEFAULT_PERSONAS_DIR = "etc/mien/personas"
__all__ = [
    "ApplyResult",
    "Cancelled",
    "Engine",
    "EngineError",
    "NeedsAttention",
    "Refused",
    "Status",
]


class Engine:
    """Personas on one machine root (``/`` in production, a directory in tests and images)."""

    def __init__(
        self,
        root: str | Path = "/",
        *,
        user: str | None = None,
        personas: Sequence[str | Path] = (),
        env: Mapping[str, str] | None = None,
        crash_at: str | None = None,
        handlers: Sequence[Handler] | None = None,
    ) -> None:
        self.root = Path(root).absolute()
        if not self.root.is_dir():
            raise EngineError(f"--root {root}: not a directory")
        self.user_name = user
        self.env: Mapping[str, str] = os.environ if env is None else env
        dirs = [Path(p) for p in personas] or [self.root / DEFAULT_PERSONAS_DIR]
        self.catalog = Catalog(dirs)
        self.crash = CrashPoints(
            crash_at if crash_at is not None else self.env.get("MIEN_CRASH_AT")
        )
        self._handlers = tuple(handlers) if handlers is not None else None
        self.recovered: list[str] = []
        # The context of the last apply that found nothing to change (for mien.agent.noop).
        self.noop_context: Context | None = None

    # --- plumbing ----------------------------------------------------------------------

    @property
    def handlers(self) -> tuple[Handler, ...]:
        if self._handlers is None:
            self._handlers = registry.handlers()
        return self._handlers

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[State]:
        """Lock the root, open its state and recover any interrupted transaction.

        ``read_only``: on a root mien never wrote to, use an empty state in memory and
        create nothing (no lock file, no database) — what ``mien plan`` and ``mien status``
        promise."""
        if read_only and not State.exists(self.root):
            self.recovered = []
            with State(self.root, memory=True) as state:
                yield state
            return
        with exclusive(self.root), State(self.root) as state:
            try:
                self.recovered = recover(state, lambda name: self._context(state, name), self.crash)
                yield state
            except sqlite3.DatabaseError as exc:
                if not state_check.is_damage(exc):
                    raise EngineError(f"the state database {state.path}: {exc}") from None
                state.damaged = True
                raise StateDamaged(state.path, f"is damaged ({exc})") from None

    def recover(self, *, start_over: bool = False) -> list[str]:
        """``mien recover``: make a machine that needs attention usable again.

        A damaged state database is replaced by its backup (``start_over``: set aside, and
        mien starts afresh); then an interrupted transaction is undone, as at the start of
        every command. Raises :class:`NeedsAttention` while that is still not possible.
        """
        path = self.root / STATE_DIR / DB_NAME
        lines: list[str] = []
        with exclusive(self.root):
            if start_over:
                lines.append(state_check.start_over(path))
            else:
                try:
                    State(self.root, create=False).close()
                except StateDamaged:
                    lines.append(state_check.restore_backup(path))
                except FileNotFoundError:
                    pass
        with self.session() as state:
            lines.extend(self.recovered)
            with state.transaction():
                state.audit("machine.recovered", start_over=start_over, done=lines)
            _backup(state)
        return lines

    def _user(self, state: State) -> UserInfo:
        name = self.user_name or state.get_meta("user")
        if not name:
            raise EngineError(
                "no persona user: pass --user NAME (the user whose shell, home and "
                "settings the persona sets); mien remembers it after the first apply"
            )
        try:
            return lookup_user(self.root, name)
        except HandlerError as exc:
            raise EngineError(str(exc)) from None

    def _context(self, state: State, persona: str) -> Context:
        return Context(
            self.root, self._user(state), persona, state.managed(), env=self.env, blobs=state.blob
        )

    # --- finding personas --------------------------------------------------------------

    def source(self, target: str | Path | None, overlays: Sequence[str | Path] = ()) -> Source:
        """Resolve a persona file or name (``None``: the default persona) for applying."""
        try:
            return sources.resolve_source(self.catalog, target, overlays)
        except sources.NoSuchPersona as exc:
            raise EngineError(str(exc)) from None

    @staticmethod
    def source_from_data(data: Mapping[str, Any], label: str) -> Source:
        return sources.source_from_data(data, label)

    @staticmethod
    def _effective(source: Source, customizations: Mapping[str, Any]) -> Resolved:
        return sources.effective(source, customizations)

    def _authored(self, source: Source, resolved: Resolved) -> Callable[[], Persona]:
        """The persona without customizations, built once and only if a handler asks."""
        built: list[Persona] = []

        def build() -> Persona:
            if not built:
                try:
                    built.append(self._effective(source, {}).persona)
                except SpecError:
                    built.append(resolved.persona)
            return built[0]

        return build

    def _active_source(self, state: State) -> Source | None:
        raw = state.get_meta("active_history")
        if not raw:
            return None
        entry, document, _, extra = state.history_entry(int(raw))
        if not entry.persona:
            return None
        return Source(entry.persona, document, dict(extra.get("locked_by", {})), entry.persona)

    def _previous_persona(self, state: State) -> Callable[[], Persona | None]:
        def build() -> Persona | None:
            raw = state.get_meta("active_history")
            if not raw:
                return None
            _, document, customs, extra = state.history_entry(int(raw))
            name = str(document.get("name") or "")
            source = Source(name, document, dict(extra.get("locked_by", {})), name)
            try:
                return self._effective(source, customs).persona
            except SpecError:
                return None

        return build

    # --- deciding ----------------------------------------------------------------------

    def _prepare(
        self,
        state: State,
        source: Source,
        *,
        snapshot: Mapping[str, Any] | None = None,
        customizations: Mapping[str, Any] | None = None,
        origins: Mapping[str, Any] | None = None,
    ) -> tuple[Plan, dict[str, Target], Context]:
        ctx = self._context(state, source.name)
        drift = find_drift(
            ctx, self.handlers, self._previous_persona(state), capture=snapshot is None
        )
        custom = dict(state.customization_map() if customizations is None else customizations)
        if snapshot is None:
            for item in drift:
                for captured in item.captured:
                    custom[captured.key] = captured.value
        where = (
            kept_files.origins(state, drift)
            if origins is None
            else {k: kept_files.Origin(str(v[0]), v[1]) for k, v in origins.items()}
        )
        kept = kept_files.kept_with_drift(state, drift) if snapshot is None else None
        misplaced: list[tuple[str, str]] = []
        every = dict(custom)
        while True:
            plan, targets = self._plan(state, ctx, source, custom, drift, snapshot, kept)
            # A value captured from one user's file is never written into another's file.
            specs = [spec for _, spec in plan.managed_specs.values()]
            wrong = [w for w in kept_files.misplaced(specs, where) if w[0] in custom]
            if not wrong:
                break
            for key, reason in wrong:
                del custom[key]
                misplaced.append((key, reason))
        # History keeps every customization, with where captured ones came from, so a
        # rollback restores them scoped as they were.
        plan.customizations = every
        plan.origins = {k: [o.path, o.uid] for k, o in where.items() if k in every}
        plan.skipped_customizations.extend(misplaced)
        plan.notes.extend(engine_notes(plan))
        return plan, targets, ctx

    def _plan(
        self,
        state: State,
        ctx: Context,
        source: Source,
        custom: dict[str, Any],
        drift: list[Any],
        snapshot: Mapping[str, Any] | None,
        kept: Mapping[str, tuple[int, int, bytes]] | None,
    ) -> tuple[Plan, dict[str, Target]]:
        try:
            resolved = self._effective(source, custom)
        except SpecError as exc:
            raise EngineError(
                "the persona with your customizations is not valid:\n"
                + "\n".join(str(p) for p in exc.problems)
                + "\n(fix or remove the customization with `mien customize unset KEY`)"
            ) from None
        if custom:
            ctx.authored = self._authored(source, resolved)
        plan = Plan(
            persona=source.name,
            previous=state.get_meta("active") or None,
            resolved=resolved,
            base_document=source.data,
            customizations=dict(custom),
            drift=drift,
            skipped_customizations=list(resolved.skipped),
        )
        try:
            targets = build_plan(plan, ctx, state, self.handlers, snapshot=snapshot, kept=kept)
        except PlanError as exc:
            raise EngineError(
                "cannot apply persona "
                + repr(source.name)
                + ":\n"
                + "\n".join(f"  {r}" for r in exc.reasons)
            ) from None
        return plan, targets

    # --- public operations -------------------------------------------------------------

    def plan(self, target: str | Path | None, overlays: Sequence[str | Path] = ()) -> Plan:
        """What :meth:`apply` would do. Touches nothing (drift is shown, not stored)."""
        return self.plan_source(self.source(target, overlays))

    def plan_source(self, source: Source) -> Plan:
        """What :meth:`apply_source` would do with ``source`` (e.g. a document from
        :meth:`source_from_data`). Touches nothing; used by :meth:`plan` and by the
        handler tests, which plan documents they build in code."""
        with self.session(read_only=True) as state:
            plan, _, _ = self._prepare(state, source)
        return plan

    def apply(
        self,
        target: str | Path | None,
        overlays: Sequence[str | Path] = (),
        *,
        confirm: Callable[[Plan], bool] | None = None,
    ) -> ApplyResult:
        """Apply a persona file or name (``None``: the default persona) as one transaction."""
        return self.apply_source(self.source(target, overlays), confirm=confirm)

    def apply_data(self, data: Mapping[str, Any], label: str = "server") -> ApplyResult:
        """Apply an already-resolved persona document (from the server)."""
        return self.apply_source(self.source_from_data(data, label))

    def apply_source(
        self, source: Source, *, confirm: Callable[[Plan], bool] | None = None, kind: str = "apply"
    ) -> ApplyResult:
        started = time.perf_counter()
        with self.session() as state:
            return self._apply_prepared(state, source, started, kind=kind, confirm=confirm)

    def _apply_prepared(
        self,
        state: State,
        source: Source,
        started: float,
        *,
        kind: str,
        note: str = "",
        confirm: Callable[[Plan], bool] | None = None,
    ) -> ApplyResult:
        """Plan ``source`` and, unless that changes nothing, keep drift and execute."""
        plan, targets, ctx = self._prepare(state, source)
        unchanged = plan.empty and not plan.drift and state.get_meta("active_hash") == plan.hash
        if unchanged:
            self.noop_context = ctx
            return ApplyResult(plan, False, None, _ms(started), self.recovered)
        if confirm is not None and not confirm(plan):
            raise Cancelled("nothing changed")
        kept_files.keep_drift(state, plan, capture=True)
        outcome = self._execute(state, ctx, plan, targets, kind=kind, note=note)
        return ApplyResult(
            plan, True, outcome.history_id, _ms(started), self.recovered, outcome.warnings
        )

    def _execute(
        self,
        state: State,
        ctx: Context,
        plan: Plan,
        targets: Mapping[str, Target],
        *,
        kind: str,
        note: str = "",
    ) -> Any:
        try:
            outcome = execute(state, ctx, plan, targets, kind=kind, note=note, crash=self.crash)
        except ApplyFailed as exc:
            # On a full disk even this may fail; the apply's own outcome is what counts.
            with contextlib.suppress(sqlite3.Error), state.transaction():
                state.audit(
                    "apply.failed",
                    persona=plan.persona,
                    stage=exc.stage,
                    error=str(exc),
                    kind=kind,
                )
            raise
        _backup(state)
        return outcome

    def rollback(self, to: int | None = None) -> ApplyResult:
        """Restore history entry ``to`` byte for byte (default: the entry before the
        current one; ``0``: the machine as it was before mien managed anything)."""
        started = time.perf_counter()
        with self.session() as state:
            target = self._rollback_target(state, to)
            if target == 0:
                source = Source("", {}, {}, "(no persona)")
                snapshot: dict[str, Any] = {}
                customs: dict[str, Any] = {}
                extra: dict[str, Any] = {}
            else:
                entry, document, customs, extra = state.history_entry(target)
                source = Source(
                    entry.persona, document, dict(extra.get("locked_by", {})), f"history #{target}"
                )
                snapshot = state.history_files(target)
            plan, targets, ctx = self._prepare(
                state,
                source,
                snapshot=snapshot,
                customizations=customs,
                origins=dict(extra.get("origins") or {}),
            )
            kept_files.keep_drift(state, plan, capture=False)
            outcome = self._execute(
                state, ctx, plan, targets, kind="rollback", note=f"to #{target}"
            )
        return ApplyResult(plan, True, outcome.history_id, _ms(started), self.recovered)

    def _rollback_target(self, state: State, to: int | None) -> int:
        entries = state.history()
        if to == 0:
            return 0
        ids = [e.id for e in entries]
        if to is not None:
            if to not in ids:
                known = ", ".join(str(i) for i in sorted(ids)) or "none yet"
                raise EngineError(f"no history entry #{to} (entries: {known}; 0 = before mien)")
            return to
        current = int(state.get_meta("active_history") or 0)
        earlier = [i for i in ids if i < current]
        if not earlier:
            raise EngineError(
                "nothing to roll back to: this is the first applied state "
                "(use --to 0 to return to the machine before mien)"
            )
        return max(earlier)

    def customize(self, key: str, value: Any = None, *, unset: bool = False) -> ApplyResult | None:
        """Set (or unset) one customization and apply the active persona with it."""
        try:
            parts = parse_key(key)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        started = time.perf_counter()
        with self.session() as state:
            source = self._active_source(state)
            if not unset and source is not None:
                lock = locking(parts, source.locked_by)
                if lock:
                    with state.transaction():
                        state.audit(
                            "customization.refused", persona=source.name, key=key, lock=lock[0]
                        )
                    raise Refused(f"{key} is locked by persona {lock[1]!r} ({lock[0]})")
            custom = state.customization_map()
            if unset:
                if key not in custom:
                    raise Refused(f"no customization {key!r} (see `mien customize list`)")
                del custom[key]
            else:
                custom[key] = value
            if source is not None:
                try:
                    self._effective(source, custom)
                except SpecError as exc:
                    raise Refused(
                        "\n".join(str(p).replace("customization:0:0: ", "") for p in exc.problems)
                    ) from None
            with state.transaction():
                if unset:
                    state.unset_customization(key)
                else:
                    state.set_customization(key, value, "user")
                state.audit(
                    "customization.unset" if unset else "customization.set",
                    persona=source.name if source else None,
                    key=key,
                    value=None if unset else value,
                )
            if source is None:
                return None
            return self._apply_prepared(state, source, started, kind="customize", note=key)

    def status(self) -> Status:
        with self.session(read_only=True) as state:
            raw = state.get_meta("active_history")
            entry, notes = None, []
            if raw:
                entry, _, _, extra = state.history_entry(int(raw))
                notes = [from_stored(n).model_dump(mode="json") for n in extra.get("notes", [])]
            managed = state.managed()
            drift = []
            user = self.user_name or state.get_meta("user")
            if managed and user:
                from mien.agent.planner import drifted_paths

                drift = sorted(drifted_paths(self._context(state, entry.persona if entry else "")))
            return Status(
                root=self.root,
                user=user,
                active=state.get_meta("active") or None,
                hash=state.get_meta("active_hash"),
                history=entry,
                drift=drift,
                notes=notes,
                customizations=len(state.customizations()),
                saved_files=len(state.saved_files()),
                managed=len(managed),
                recovered=self.recovered,
            )

    def history(self, limit: int | None = None) -> tuple[list[HistoryEntry], int | None]:
        with self.session(read_only=True) as state:
            current = state.get_meta("active_history")
            return state.history(limit), int(current) if current else None

    def keep_saved(self, number: int, keep: bool = True) -> ApplyResult | None:
        """Keep saved file ``number`` as its path's version (or stop), then apply."""
        started = time.perf_counter()
        with self.session() as state:
            try:
                with state.transaction():
                    item = kept_files.set_kept(state, number, keep)
                    state.audit(
                        "saved_file.adopted" if keep else "saved_file.dropped",
                        path=item.path,
                        saved=number,
                        uid=item.uid,
                    )
            except KeyError as exc:
                raise Refused(str(exc.args[0])) from None
            source = self._active_source(state)
            if source is None:
                return None
            note = f"saved file #{number}"
            return self._apply_prepared(state, source, started, kind="customize", note=note)

    def saved_content(self, number: int) -> tuple[kept_files.SavedFile, bytes]:
        with self.session(read_only=True) as state:
            try:
                item = kept_files.saved_file(state, number)
            except KeyError as exc:
                raise Refused(str(exc.args[0])) from None
            return item, state.blob(item.hash)

    def customizations(self) -> tuple[list[Any], list[kept_files.SavedFile]]:
        with self.session(read_only=True) as state:
            return state.customizations(), kept_files.saved_files(state)


def _backup(state: State) -> None:
    # The last good state, for `mien recover`; a backup that cannot be written (a full
    # disk) leaves the previous one, and does not undo what was applied.
    with contextlib.suppress(OSError, sqlite3.Error):
        state.backup()


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
