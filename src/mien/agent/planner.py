"""Deciding what an apply changes: drift detection, then each handler's plan, then the diff
of desired files against the machine and against what the last persona managed.

Nothing here writes. The engine calls :func:`find_drift` (user edits of managed files,
turned into customizations or saved copies), re-resolves the persona with those
customizations, then calls :func:`build_plan`. ``mien plan`` prints the result; the
transaction performs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from mien.agent import fileops, kept_files
from mien.agent.handlers.base import (
    ABSENT,
    Captured,
    Context,
    FileSpec,
    FileState,
    Handler,
    HandlerError,
    ManagedRecord,
    Note,
)
from mien.agent.plan import Action, Drift, FileChange, Plan
from mien.agent.state import State, sha256
from mien.protocol.outcomes import Outcome
from mien.spec.models import Persona


@dataclass(frozen=True, slots=True)
class Target:
    """A file's state after the apply, and the record kept for the next apply."""

    state: FileState
    record: ManagedRecord | None  # None: no longer managed


class PlanError(Exception):
    """Handlers refused the persona; every reason is listed."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(self.reasons))


def drifted_paths(ctx: Context) -> dict[str, FileState]:
    """Managed files whose bytes differ from what mien last wrote, with their current state."""
    out: dict[str, FileState] = {}
    for path, record in ctx.managed.items():
        try:
            current = ctx.read(path)
        except HandlerError:
            current = ABSENT  # replaced by a directory or device: treat as gone
        digest = None if current.content is None else sha256(current.content)
        if digest != record.written_hash:
            out[path] = current
    return out


def find_drift(
    ctx: Context,
    handlers: Sequence[Handler],
    previous: Callable[[], Persona | None],
    *,
    capture: bool = True,
) -> list[Drift]:
    """User edits of managed files: per-key customizations where a handler can map them
    (``capture``), otherwise a whole-file copy to save. A deleted file has nothing to keep.

    ``previous`` gives the persona that wrote the files; it is only built when some file
    actually changed, so the common case costs one read and hash per managed file.
    """
    changed = drifted_paths(ctx)
    if not changed:
        return []
    captured: dict[str, list[Captured]] = {}
    persona = previous() if capture else None
    if persona is not None:
        for handler in handlers:
            owned = [p for p, r in ctx.managed.items() if r.handler == handler.name]
            if not any(p in changed for p in owned):
                continue
            for item in handler.capture(ctx, persona):
                captured.setdefault(item.source, []).append(item)
    out = []
    for path, current in sorted(changed.items()):
        items = tuple(captured.get(path, ()))
        saved = not items and current.content is not None
        # Whose edit it is: the owner, unless anyone may write the file (then nobody knows,
        # and what it holds is neither kept nor applied anywhere by itself).
        uid = current.uid if current.exists and not current.mode & 0o002 else None
        # A whole text file whose edit no key explains is kept whole, for its owner.
        kept = capture and saved and uid is not None and bool(ctx.managed[path].capture_as)
        out.append(Drift(path, items, saved, current.content, uid, kept))
    return out


def _action(before: FileState, after: FileState, unmanage: bool) -> Action:
    if not after.exists:
        return "delete"
    if unmanage:
        return "restore"
    if not before.exists:
        return "create"
    if before.content == after.content:
        return "mode"
    return "update"


def _record(handler: str, path: str, spec: FileSpec, state: FileState) -> ManagedRecord:
    digest = None if state.content is None else sha256(state.content)
    return ManagedRecord(path, handler, digest, dict(spec.meta), spec.setting, spec.capture_as)


def build_plan(
    plan: Plan,
    ctx: Context,
    state: State,
    handlers: Sequence[Handler],
    *,
    snapshot: Mapping[str, tuple[ManagedRecord, FileState]] | None = None,
    kept: Mapping[str, tuple[int, int, bytes]] | None = None,
) -> dict[str, Target]:
    """Fill ``plan`` with file changes, operations and notes; return every file's target.

    With ``snapshot`` (a rollback), files are restored to exactly the snapshot's bytes and
    handlers are consulted only for operations and notes. ``kept`` are the user's kept
    whole files (:func:`mien.agent.kept_files.overlay` decides where they apply).
    """
    persona = plan.resolved.persona
    plan.handler_order = [h.name for h in handlers]
    specs: dict[str, tuple[str, FileSpec]] = {}
    errors: list[str] = []
    for handler in handlers:
        try:
            decided = handler.plan(ctx, persona)
        except HandlerError as exc:
            errors.append(f"{handler.name}: {exc}")
            continue
        for spec in decided.files:
            owner = specs.get(spec.path)
            if owner is not None:
                errors.append(f"{spec.path} is claimed by both {owner[0]} and {handler.name}")
                continue
            specs[spec.path] = (handler.name, spec)
        plan.operations.extend(decided.operations)
        plan.notes.extend(decided.notes)
    if errors:
        raise PlanError(errors)
    if kept and snapshot is None:
        mine = kept_files.overlay(ctx, (spec for _, spec in specs.values()), kept)
        for path, spec in mine.items():
            specs[path] = (specs[path][0], spec)
    plan.managed_specs = specs

    targets: dict[str, Target] = {}
    if snapshot is not None:
        for path, (record, snap) in snapshot.items():
            targets[path] = Target(snap, record)
    else:
        for path, (handler_name, spec) in specs.items():
            if spec.desired is None:
                restored = state.pristine(path) or ABSENT
                targets[path] = Target(restored, None)
            else:
                targets[path] = Target(
                    spec.desired, _record(handler_name, path, spec, spec.desired)
                )
    for path in ctx.managed:
        if path not in targets:
            targets[path] = Target(state.pristine(path) or ABSENT, None)

    for path, target in targets.items():
        current = _read(ctx, path)
        if fileops.same(current, target.state):
            continue
        handler_name = (
            target.record.handler
            if target.record
            else (specs[path][0] if path in specs else ctx.managed[path].handler)
        )
        file_spec = specs[path][1] if path in specs else None
        plan.files.append(
            FileChange(
                path,
                handler_name,
                _action(current, target.state, target.record is None),
                current,
                target.state,
                file_spec,
            )
        )
    order = {h.name: i for i, h in enumerate(handlers)}
    plan.files.sort(
        key=lambda c: (c.action in ("restore", "delete"), order.get(c.handler, 99), c.path)
    )
    return targets


def _read(ctx: Context, path: str) -> FileState:
    try:
        return ctx.read(path)
    except HandlerError as exc:
        raise PlanError([str(exc)]) from None


def engine_notes(plan: Plan) -> list[Note]:
    return [
        Note(key, Outcome.FAILED, f"customization not applied: {reason}")
        for key, reason in plan.skipped_customizations
    ]
