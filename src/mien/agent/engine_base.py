"""The engine's machinery: one locked session on a root, and how a persona is resolved
(extends, overlays, the user's customizations, locks), decided (drift capture and the
plan, :mod:`mien.agent.planner`) and only then changed (:mod:`mien.agent.transaction`).

:class:`EngineBase` is the base of :class:`mien.agent.engine.Engine`, which adds the
operations the CLI and the agent's sync loop call; nothing else uses this module.
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

from mien.agent import kept_files, noop, recovery, registry, sources
from mien.agent.handlers.base import Context, Handler, HandlerError
from mien.agent.handlers.users import UserInfo, lookup_user
from mien.agent.outcomes import ApplyResult, Cancelled, EngineError
from mien.agent.plan import Plan
from mien.agent.planner import PlanError, Target, build_plan, engine_notes, find_drift
from mien.agent.sources import Source
from mien.agent.state import State
from mien.agent.transaction import ApplyFailed, CrashPoints, execute
from mien.spec.catalog import Catalog
from mien.spec.errors import SpecError
from mien.spec.layers import Resolved
from mien.spec.models import Persona

DEFAULT_PERSONAS_DIR = "etc/mien/personas"


class EngineBase:
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
        # Applies that found nothing to change, answered again while nothing they rested on
        # changed (a daemon re-applies the same persona many times).
        self.memo = noop.Memo()

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
        self.recovered = []
        with recovery.open_session(self.root, self.crash, self._context, read_only=read_only) as (
            state,
            recovered,
        ):
            self.recovered = recovered
            yield state

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
            self.root,
            self._user(state),
            persona,
            state.managed(),
            env=self.env,
            blobs=state.blob,
            written=state.written_ownership(),
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
            return ApplyResult(plan, False, None, ms_since(started), self.recovered)
        if confirm is not None and not confirm(plan):
            raise Cancelled("nothing changed")
        kept_files.keep_drift(state, plan, capture=True)
        outcome = self._execute(state, ctx, plan, targets, kind=kind, note=note)
        return ApplyResult(
            plan, True, outcome.history_id, ms_since(started), self.recovered, outcome.warnings
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
        recovery.backup(state)
        return outcome


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
