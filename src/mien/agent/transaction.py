"""Performing a plan as one transaction, and undoing an interrupted one.

Order of an apply:

1. ``pre_activation_script`` — a failure aborts with nothing changed;
2. each change through the journal: the before-image (or the operation's undo data) is
   committed to the state database, *then* the file is replaced atomically;
3. ``post_activation_script`` — a failure undoes every journaled change in reverse;
4. commit: managed records, pristine images, history and the active persona in one SQLite
   transaction; then operations are told to finish (drop their backups) and directories no
   longer needed are removed (the transaction is ``finishing`` until both are done).

:func:`recover` runs at the start of every mien command on a root: a transaction still
``open`` belonged to a process that died (its lock is gone), so its journal is replayed
backwards and the machine is byte for byte as before it started. ``MIEN_CRASH_AT`` (see
:class:`CrashPoints`) kills the process at a named step, which is how the tests prove it.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import signal
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from mien.agent import fileops, registry, space
from mien.agent.handlers.base import Context, FileState, HandlerError, ManagedRecord, Operation
from mien.agent.plan import FileChange, Plan
from mien.agent.planner import Target
from mien.agent.scripts import ScriptResult, run_script
from mien.agent.state import State
from mien.agent.state_check import NeedsAttention
from mien.spec.models import Script


class CrashPoints:
    """Test hook: ``MIEN_CRASH_AT=journaled:3`` sends SIGKILL to this process right after
    journal entry 3 is committed (also ``written:N``, ``performed:N``, ``pre-script``,
    ``post-script``, ``before-commit``, ``committed``, ``recovering:N``)."""

    def __init__(self, target: str | None) -> None:
        self.target = target

    def __call__(self, point: str) -> None:
        if self.target is not None and point == self.target:
            os.kill(os.getpid(), signal.SIGKILL)


class ApplyFailed(Exception):
    """The apply did not happen; the machine is as it was. ``stage`` says where it failed."""

    def __init__(self, stage: str, message: str, *, undo_errors: Sequence[str] = ()) -> None:
        self.stage = stage
        self.undo_errors = list(undo_errors)
        extra = f" (undo problems: {'; '.join(undo_errors)})" if undo_errors else ""
        super().__init__(f"{stage}: {message}{extra}")


@dataclass
class Outcome:
    history_id: int
    changed_files: int
    operations: int
    warnings: list[str] = field(default_factory=list)


def execute(
    state: State,
    ctx: Context,
    plan: Plan,
    targets: Mapping[str, Target],
    *,
    kind: str,
    note: str = "",
    crash: CrashPoints | None = None,
    run_hooks: bool = True,
) -> Outcome:
    """Perform ``plan``; raise :class:`ApplyFailed` with the machine unchanged on failure."""
    crash = crash or CrashPoints(None)
    persona = plan.resolved.persona
    ctx.stop_caching()
    writes = [(ctx.host_path(c.path), len(c.after.content or b"")) for c in plan.files]
    try:
        space.reserve(state.root, writes)
        txn = state.begin_txn(plan.persona, kind)
    except (space.NoSpace, OSError, sqlite3.Error) as exc:
        space.release(state.root)
        raise ApplyFailed("space", str(exc)) from None
    crash("begun")
    if run_hooks and persona.pre_activation_script is not None:
        crash("pre-script")
        result = _hook(persona.pre_activation_script, ctx, plan)
        if not result.ok:
            _undo_or_stop(state, ctx, txn, plan, "pre_activation_script", result.describe())

    seq = 0
    first_before: dict[str, FileState] = {}
    created: list[str] = []
    try:
        for step in _steps(plan):
            if isinstance(step, Operation):
                seq += 1
                state.journal_other(
                    txn, seq, "op", step.key, {"handler": step.handler, "data": dict(step.data)}
                )
                crash(f"journaled:{seq}")
                registry.by_name(step.handler).perform(ctx, step.data)
                crash(f"performed:{seq}")
                continue
            for d in fileops.missing_dirs(ctx.root, step.path):
                seq += 1
                state.journal_other(txn, seq, "mkdir", d, {})
                crash(f"journaled:{seq}")
                fileops.make_dir(ctx.root, d, _owner_in_home(ctx, d))
                created.append(d)
            before = ctx.read(step.path)
            seq += 1
            state.journal_file(txn, seq, step.path, before)
            first_before.setdefault(step.path, before)
            crash(f"journaled:{seq}")
            fileops.write(ctx.root, step.path, step.after)
            crash(f"written:{seq}")
    except (HandlerError, OSError, sqlite3.Error) as exc:
        _undo_or_stop(state, ctx, txn, plan, "change", str(exc))

    if run_hooks and persona.post_activation_script is not None:
        crash("post-script")
        result = _hook(persona.post_activation_script, ctx, plan)
        if not result.ok:
            _undo_or_stop(state, ctx, txn, plan, "post_activation_script", result.describe())

    crash("before-commit")
    try:
        history_id = _commit(state, ctx, plan, targets, txn, first_before, created, kind, note)
    except (OSError, sqlite3.Error) as exc:
        _undo_or_stop(state, ctx, txn, plan, "commit", str(exc))
    crash("committed")
    space.release(state.root)
    try:
        warnings = _finish(state, ctx, txn)
    except (OSError, sqlite3.Error) as exc:  # committed: recovery finishes it next time
        warnings = [f"cleanup after the commit failed ({exc}); the next mien command finishes it"]
    return Outcome(history_id, len(plan.files), len(plan.operations), warnings)


def _hook(script: Script, ctx: Context, plan: Plan) -> ScriptResult:
    return run_script(
        script.run,
        root=ctx.root,
        persona=plan.persona,
        previous=plan.previous,
        timeout=script.timeout.seconds,
        env=ctx.env,
    )


def _steps(plan: Plan) -> list[FileChange | Operation]:
    """The order changes are made in: handler by handler (packages before the files that
    configure them), each handler's files before its operations (a keyfile before
    ``dconf update``); files that are only being restored or removed come last."""
    by_handler: dict[str, list[FileChange | Operation]] = {}
    for change in plan.files:
        if change.action not in ("restore", "delete"):
            by_handler.setdefault(change.handler, []).append(change)
    for op in plan.operations:
        by_handler.setdefault(op.handler, []).append(op)
    order = {name: i for i, name in enumerate(plan.handler_order)}
    steps: list[FileChange | Operation] = []
    for name in sorted(by_handler, key=lambda n: order.get(n, len(order))):
        steps.extend(by_handler[name])
    steps.extend(c for c in plan.files if c.action in ("restore", "delete"))
    return steps


def _owner_in_home(ctx: Context, directory: str) -> tuple[int, int] | None:
    # A directory mien creates inside the user's home (~/.config) belongs to the user,
    # or they could not create anything of their own in it.
    home = ctx.user.home.rstrip("/") + "/"
    return (ctx.user.uid, ctx.user.gid) if directory.startswith(home) else None


def _commit(
    state: State,
    ctx: Context,
    plan: Plan,
    targets: Mapping[str, Target],
    txn: int,
    first_before: Mapping[str, FileState],
    created: Sequence[str],
    kind: str,
    note: str,
) -> int:
    managed: dict[str, ManagedRecord] = {}
    snapshot: dict[str, tuple[ManagedRecord, FileState]] = {}
    with state.transaction():
        for path, target in targets.items():
            if target.record is None:
                state.forget_pristine(path)
                continue
            if path in first_before:
                state.remember_pristine(path, first_before[path])
            managed[path] = target.record
            snapshot[path] = (target.record, target.state)
        state.replace_managed(managed)
        for directory in created:
            state.add_created_dir(directory)
        extra: dict[str, Any] = {
            "locked_by": plan.resolved.locked_by,
            "notes": plan.outcomes(),
            "operations": [
                {"handler": op.handler, "key": op.key, "summary": op.summary}
                for op in plan.operations
            ],
            "user": ctx.user.name,
            "origins": plan.origins,
        }
        history_id = state.add_history(
            plan.persona,
            plan.hash,
            plan.base_document,
            plan.customizations,
            extra,
            snapshot,
            kind,
            note,
        )
        if kind == "rollback":  # the restored state includes the customizations of its day
            state.replace_customizations(
                plan.customizations, source="rollback", origins=plan.origins
            )
        state.set_meta("active", plan.persona)
        state.set_meta("active_hash", plan.hash)
        state.set_meta("active_history", str(history_id))
        state.set_meta("user", ctx.user.name)
        # Committed; what is left (operations dropping their backups, removing directories
        # the old persona needed) is finished now, or by recovery after a crash.
        state.db.execute("UPDATE txn SET state = 'finishing' WHERE id = ?", (txn,))
        if plan.previous and plan.previous != plan.persona:
            state.audit("persona.deactivated", persona=plan.previous, next=plan.persona)
        state.audit(
            "persona.activated" if kind == "apply" else f"persona.{kind}",
            persona=plan.persona,
            previous=plan.previous,
            hash=plan.hash,
            history=history_id,
            files=len(plan.files),
            operations=len(plan.operations),
            note=note,
        )
    return history_id


def _prune_dirs(state: State, root: Path) -> None:
    """Remove directories mien created that no longer hold anything (after unmanaging).

    Idempotent, after the commit and part of finishing it: a crash before it is done
    leaves the transaction ``finishing``, and recovery prunes them. A directory behind a
    link the user planted since is forgotten, never removed through the link.
    """
    for directory in state.created_dirs():
        try:
            gone = fileops.remove_dir_if_empty(root, directory)
        except OSError:
            gone = True
        if gone:
            state.forget_created_dir(directory)


def _finish(state: State, ctx: Context, txn: int) -> list[str]:
    """Let committed operations drop what they kept for undo; record what failed."""
    ctx.stop_caching()
    warnings = []
    for entry in state.journal(txn):
        if entry.kind != "op":
            continue
        try:
            registry.by_name(entry.data["handler"]).finish(ctx, entry.data["data"])
        except (HandlerError, OSError) as exc:
            warnings.append(f"{entry.target}: cleanup after commit failed: {exc}")
    with state.transaction():
        _prune_dirs(state, ctx.root)
        state.end_txn(txn, "committed")
    return warnings


def _undo_or_stop(
    state: State, ctx: Context, txn: int, plan: Plan, stage: str, message: str
) -> NoReturn:
    """Undo a failed transaction: :class:`ApplyFailed` when the machine is as it was,
    :class:`NeedsAttention` when something could not be undone (kept for recovery)."""
    problems = undo(state, ctx, txn)
    if problems:
        raise NeedsAttention(
            f"the {plan.persona!r} change failed ({stage}: {message}) and could not be undone "
            f"({'; '.join(problems)}); the machine may hold parts of "
            f"{plan.previous or 'the machine before mien'!r} and {plan.persona!r} until "
            f"`mien recover` succeeds (free some space first if the disk is full)"
        )
    raise ApplyFailed(stage, message)


def undo(state: State, ctx: Context, txn: int, crash: CrashPoints | None = None) -> list[str]:
    """Replay ``txn``'s journal backwards; return what could not be undone (if anything).

    Only a complete undo ends the transaction (``rolled_back``); otherwise it stays open,
    journal and all, so the next mien command (or ``mien recover``) tries again.
    """
    crash = crash or CrashPoints(None)
    ctx.stop_caching()
    space.release(state.root)  # the room reserved for exactly this
    problems: list[str] = []
    try:
        entries = state.journal(txn)
    except sqlite3.Error as exc:
        return [f"the journal: {exc}"]
    for entry in reversed(entries):
        crash(f"recovering:{entry.seq}")
        try:
            if entry.kind == "file":
                assert entry.before is not None
                fileops.write(ctx.root, entry.target, entry.before)
                fileops.sweep_temp_files(ctx.root, posixpath.dirname(entry.target))
            elif entry.kind == "mkdir":
                fileops.remove_dir_if_empty(ctx.root, entry.target)
            elif entry.kind == "op":
                registry.by_name(entry.data["handler"]).revert(ctx, entry.data["data"])
        except (HandlerError, OSError) as exc:
            problems.append(f"{entry.target}: {exc}")
    if problems:
        return problems
    try:
        with state.transaction():
            state.end_txn(txn, "rolled_back")
    except sqlite3.Error as exc:
        return [f"marking the transaction undone: {exc}"]
    return problems


def recover(state: State, ctx_for: Any, crash: CrashPoints | None = None) -> list[str]:
    """Finish what a dead process left: roll back open transactions, finish committed ones.

    ``ctx_for(persona)`` builds a context (handlers need one to revert operations). Returns
    one line per transaction handled, for the user and the audit log.
    """
    space.release(state.root)  # whoever reserved it is gone (we hold the root's lock)
    lines = []
    for txn, persona, kind in state.open_txns():
        ctx = ctx_for(persona)
        problems = undo(state, ctx, txn, crash)
        if problems:
            # Never recorded as rolled back: every command stops until an undo succeeds.
            with contextlib.suppress(sqlite3.Error), state.transaction():
                state.audit("transaction.stuck", persona=persona, txn=txn, problems=problems)
            raise NeedsAttention(
                f"an interrupted {kind} of persona {persona!r} could not be undone "
                f"({'; '.join(problems)}); the machine may hold parts of two personas until "
                "`mien recover` succeeds (free some space first if the disk is full)"
            )
        with state.transaction():
            state.audit("transaction.recovered", persona=persona, txn=txn, problems=problems)
        lines.append(f"rolled back an interrupted {kind} of persona {persona!r}")
    rows = state.db.execute("SELECT id, persona FROM txn WHERE state = 'finishing'").fetchall()
    for txn, persona in rows:
        warnings = _finish(state, ctx_for(persona), int(txn))
        lines.append(
            f"finished cleanup of applied persona {persona!r}"
            + (f" ({'; '.join(warnings)})" if warnings else "")
        )
    return lines
