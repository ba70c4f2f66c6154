"""The agent's engine: plan, apply, switch, customize and roll back personas on one root.

Every public method takes the root's lock, first recovers whatever a dead process left
(:mod:`mien.agent.recovery`), then resolves, decides and only then changes, through the
machinery of :class:`mien.agent.engine_base.EngineBase`.

Used by the CLI (``mien plan|apply|status|history|rollback|customize|recover``) and by the
agent's sync loop, which applies documents received from the server with
:meth:`Engine.apply_data`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mien.agent import kept_files, recovery
from mien.agent.engine_base import EngineBase, ms_since
from mien.agent.handlers import programs
from mien.agent.outcomes import ApplyResult, Cancelled, EngineError, Refused, Status
from mien.agent.plan import Plan
from mien.agent.sources import Source
from mien.agent.state import HistoryEntry, State
from mien.agent.state_check import NeedsAttention
from mien.protocol.outcomes import from_stored
from mien.spec.errors import SpecError
from mien.spec.keys import locking, parse_key

__all__ = [
    "ApplyResult",
    "Cancelled",
    "Engine",
    "EngineError",
    "NeedsAttention",
    "Refused",
    "Status",
]


class Engine(EngineBase):
    """Personas on one machine root (``/`` in production, a directory in tests and images)."""

    def recover(self, *, start_over: bool = False) -> list[str]:
        """``mien recover``: make a machine that needs attention usable again.

        A damaged state database is replaced by its backup (``start_over``: set aside, and
        mien starts afresh); then an interrupted transaction is undone, as at the start of
        every command. Raises :class:`NeedsAttention` while that is still not possible.
        """
        lines = recovery.repair_database(self.root, start_over=start_over)
        with self.session() as state:
            lines.extend(self.recovered)
            recovery.record(state, start_over, lines)
        return lines

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
        started = time.perf_counter()
        key = "target:" + json.dumps(
            [None if target is None else str(target), list(map(str, overlays))]
        )
        found = self._replay(key, started)
        if found is not None:
            return found
        launched = programs.Launches.count
        result = self.apply_source(self.source(target, overlays), confirm=confirm)
        files = [*self.catalog.loaded(), *self.catalog.dirs, *map(Path, overlays)]
        if target is not None and ("/" in str(target) or Path(target).suffix):
            files.append(Path(target))
        self._remember(key, result, launched, files)
        return result

    def apply_data(self, data: Mapping[str, Any], label: str = "server") -> ApplyResult:
        """Apply an already-resolved persona document (from the server)."""
        return self.apply_source(self.source_from_data(data, label))

    def apply_source(
        self,
        source: Source,
        *,
        confirm: Callable[[Plan], bool] | None = None,
        kind: str = "apply",
        note: str = "",
    ) -> ApplyResult:
        """Apply ``source``; ``kind`` and ``note`` go to history and the audit (the
        adaptation loop's applies are kind ``automated``, noting the rule)."""
        started = time.perf_counter()
        key = "source:" + source.digest()
        found = self._replay(key, started)
        if found is not None:
            return found
        launched = programs.Launches.count
        with self.session() as state:
            result = self._apply_prepared(
                state, source, started, kind=kind, note=note, confirm=confirm
            )
        self._remember(key, result, launched)
        return result

    def _replay(self, key: str, started: float) -> ApplyResult | None:
        """The remembered answer of an identical apply that changed nothing, if everything
        it rested on (every path its plan looked at, the state) is untouched since."""
        found = self.memo.recall(key)
        if found is None:
            return None
        self.recovered = []
        return ApplyResult(found.plan, False, None, ms_since(started))

    def _remember(
        self, key: str, result: ApplyResult, launched: int, files: Sequence[Path] = ()
    ) -> None:
        # A plan that ran a program (a package manager) rested on more than files, and a
        # test that crashes the engine on purpose wants every apply planned.
        if result.applied or result.recovered or self.crash.target is not None:
            self.memo.forget()
            return
        if programs.Launches.count != launched or self.noop_context is None:
            return
        self.memo.remember(
            key, result, self.root, self.noop_context.observed, (str(f) for f in files)
        )

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
        return ApplyResult(plan, True, outcome.history_id, ms_since(started), self.recovered)

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
