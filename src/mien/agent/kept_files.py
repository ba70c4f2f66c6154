"""Your edits of managed files, scoped to the file and the owner they came from.

A user's edit of a file mien manages is kept one of two ways:

* a **key** a handler understands (a JSON key, an environment variable, a cron schedule)
  becomes a customization that remembers the file and the uid that owned it
  (``origin``, ``origin_uid``); :func:`misplaced` refuses it wherever a persona would write
  it into a file another uid owns, or only elsewhere than the file it came from;
* a **whole text file** (a handler marks such files with ``FileSpec.capture_as``: the
  ``content`` of an application file, a cron job, the dconf keyfile) whose edit no key
  explains is kept whole: a row of ``saved_files`` with ``kept = 1``, keyed by the path
  and the uid that owned the file. Whenever a persona writes that path again, the kept
  bytes are written instead (:func:`overlay`) — only there, and only while that uid owns
  the file and would own it after the write. The bytes never flow into a file the user
  could not write: a persona that gives the path to another owner gets its own content.

Every saved file has a number: ``mien customize show N`` prints it, ``adopt N`` keeps it
(and applies it), ``drop N`` stops keeping it. Used by :mod:`mien.agent.engine` (capture
and apply) and the CLI (``mien customize``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mien.agent.handlers.base import Context, FileSpec, FileState, HandlerError
from mien.agent.plan import Drift, Plan
from mien.agent.state import State, sha256

SHOW_CAP = 64 * 1024  # what `mien customize show` prints at most


@dataclass(frozen=True, slots=True)
class SavedFile:
    """A copy of a file as a user left it (``kept``: restored whenever mien writes it)."""

    id: int
    path: str
    hash: str
    persona: str
    saved_at: float
    uid: int | None  # who owned the file when it was saved (None: unknown)
    kept: bool
    size: int


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a captured customization came from."""

    path: str
    uid: int | None


def saved_files(state: State) -> list[SavedFile]:
    rows = state.db.execute(
        "SELECT s.id, s.path, s.hash, s.persona, s.saved_at, s.uid, s.kept, length(b.data) "
        "FROM saved_files s LEFT JOIN blobs b ON b.hash = s.hash ORDER BY s.id"
    )
    return [
        SavedFile(int(r[0]), r[1], r[2], r[3], float(r[4]), r[5], bool(r[6]), int(r[7] or 0))
        for r in rows
    ]


def saved_file(state: State, number: int) -> SavedFile:
    for item in saved_files(state):
        if item.id == number:
            return item
    known = ", ".join(str(s.id) for s in saved_files(state)) or "none"
    raise KeyError(f"no saved file #{number} (saved files: {known}; see `mien customize list`)")


def keep(state: State, path: str, content: bytes, uid: int, persona: str) -> int:
    """Keep ``content`` as the user's version of ``path`` for ``uid`` (in a transaction)."""
    digest = state.put_blob(content)
    state.db.execute("UPDATE saved_files SET kept = 0 WHERE path = ?", (path,))
    cur = state.db.execute(
        "INSERT INTO saved_files (path, hash, persona, saved_at, uid, kept) "
        "VALUES (?, ?, ?, ?, ?, 1)",
        (path, digest, persona, time.time(), uid),
    )
    return int(cur.lastrowid or 0)


def set_kept(state: State, number: int, kept: bool) -> SavedFile:
    """Keep saved file ``number`` as its path's version (or stop keeping it)."""
    item = saved_file(state, number)
    if kept:
        if item.uid is None:
            raise KeyError(
                f"saved file #{number} does not record who owned {item.path}: "
                "it cannot be kept (`mien customize show` prints it)"
            )
        state.db.execute("UPDATE saved_files SET kept = 0 WHERE path = ?", (item.path,))
    state.db.execute("UPDATE saved_files SET kept = ? WHERE id = ?", (int(kept), number))
    return dataclasses.replace(item, kept=kept)


def kept_by_path(state: State) -> dict[str, tuple[int, int, bytes]]:
    """Kept files: path → (number, uid, bytes)."""
    out: dict[str, tuple[int, int, bytes]] = {}
    for item in saved_files(state):
        if item.kept and item.uid is not None:
            out[item.path] = (item.id, item.uid, state.blob(item.hash))
    return out


def overlay(
    ctx: Context, specs: Iterable[FileSpec], kept: Mapping[str, tuple[int, int, bytes]]
) -> dict[str, FileSpec]:
    """Specs of whole text files with the user's kept bytes in place of the persona's.

    Only a spec at the kept path, owned after the write by the uid the bytes came from,
    while that uid owns the file now (or it is absent), is changed. Returns the changed
    specs by path.
    """
    out: dict[str, FileSpec] = {}
    for spec in specs:
        found = kept.get(spec.path)
        desired = spec.desired
        if found is None or desired is None or desired.content is None or not spec.capture_as:
            continue
        number, uid, content = found
        if desired.uid != uid:
            continue
        try:
            current = ctx.read(spec.path)
        except HandlerError:
            continue
        if current.exists and current.uid != uid:
            continue
        out[spec.path] = dataclasses.replace(
            spec,
            desired=FileState(content, desired.mode, desired.uid, desired.gid),
            summary=f"your kept version (saved file #{number})" if number else "your version",
        )
    return out


def _related(key: str, setting: str) -> bool:
    return bool(setting) and (
        key == setting or key.startswith(setting + ".") or setting.startswith(key + ".")
    )


def misplaced(specs: Iterable[FileSpec], origins: Mapping[str, Origin]) -> list[tuple[str, str]]:
    """Captured customizations a persona would write somewhere they did not come from.

    A value captured from a file owned by uid U applies only if every file a persona
    writes for its setting will be owned by U, and one of them is the file it came from.
    Returns (key, reason) for each one that must be left out.
    """
    wanted = [s for s in specs if s.desired is not None and s.desired.content is not None]
    out: list[tuple[str, str]] = []
    for key, origin in sorted(origins.items()):
        related = [s for s in wanted if _related(key, s.setting)]
        if not related:
            continue
        foreign = [s for s in related if s.desired is None or s.desired.uid != origin.uid]
        if origin.uid is None:
            out.append((key, f"captured from {origin.path}, whose owner is not known"))
        elif foreign:
            out.append(
                (
                    key,
                    f"captured from {origin.path} (uid {origin.uid}); this persona writes "
                    f"it to {foreign[0].path}, owned by another user",
                )
            )
        elif not any(s.path == origin.path for s in related):
            paths = ", ".join(sorted(s.path for s in related))
            out.append((key, f"captured from {origin.path}; this persona writes it to {paths}"))
    return out


def origins(state: State, drift: Iterable[Drift]) -> dict[str, Origin]:
    """Where each captured customization came from: stored ones, then this apply's drift."""
    out = {c.key: Origin(c.origin, c.origin_uid) for c in state.customizations() if c.origin}
    for item in drift:
        for captured in item.captured:
            out[captured.key] = Origin(item.path, item.uid)
    return out


def kept_with_drift(state: State, drift: Iterable[Drift]) -> dict[str, tuple[int, int, bytes]]:
    """Kept files, with the whole files this apply's drift is about to keep."""
    out = kept_by_path(state)
    for item in drift:
        if item.kept and item.content is not None and item.uid is not None:
            out[item.path] = (0, item.uid, item.content)
    return out


def keep_drift(state: State, plan: Plan, *, capture: bool) -> None:
    """Store what the user changed in managed files before anything overwrites it
    (``capture``: as customizations and kept files; otherwise as saved copies only)."""
    if not plan.drift:
        return
    skipped = {key for key, _ in plan.skipped_customizations}
    with state.transaction():
        for item in plan.drift:
            keys = [c.key for c in item.captured]
            if capture:
                for captured in item.captured:
                    state.set_customization(
                        captured.key, captured.value, "captured", item.path, item.uid
                    )
            if item.kept and item.content is not None and item.uid is not None:
                number = keep(state, item.path, item.content, item.uid, plan.previous or "")
                state.audit(
                    "drift.kept",
                    persona=plan.previous,
                    path=item.path,
                    saved=number,
                    uid=item.uid,
                    sha256=sha256(item.content),
                )
                continue
            lost = not capture or any(k in skipped for k in keys)
            current = item.content if (item.saved or (lost and item.captured)) else None
            if current is not None:
                saved_id = state.save_file(item.path, current, plan.previous or "", item.uid)
                state.audit(
                    "drift.saved",
                    persona=plan.previous,
                    path=item.path,
                    saved=saved_id,
                    sha256=sha256(current),
                )
            if item.captured and capture:
                state.audit(
                    "drift.captured",
                    persona=plan.previous,
                    path=item.path,
                    keys=keys,
                )
