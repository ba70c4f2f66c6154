"""Files mien shares with their owner: the plan/release/capture steps around
:func:`formats.merge`, common to every handler that sets some keys of a file it does not
own whole (application configuration, GTK settings, Firefox's ``policies.json``).

The file's meta says which keys mien manages (with their pristine values), the format,
and whether mien created the file; see :mod:`.formats` for the merge itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mien.agent.handlers import formats
from mien.agent.handlers.base import Context, FileSpec, FileState, HandlerError, ManagedRecord
from mien.agent.handlers.support import edited, hold, is_released, owner_of, text_of


def load(fmt: str, current: FileState, path: str, what: str, delimiter: str = " = ") -> formats.Doc:
    try:
        return formats.load(fmt, text_of(current, path), delimiter=delimiter)
    except formats.FormatError as exc:
        raise HandlerError(f"{path} ({what}): {exc}; fix the file or move it away") from None


def merged(
    ctx: Context,
    path: str,
    fmt: str,
    desired: Mapping[formats.KeyPath, Any],
    record: ManagedRecord | None,
    *,
    what: str,
    header: str | None,
    summary: str,
    setting: str = "",
    meta: Mapping[str, Any] | None = None,
    ownership: tuple[int, int, int] | None = None,
    delimiter: str = " = ",
) -> FileSpec:
    """``path`` with ``desired`` merged in (keys managed last time and not now put back).

    ``ownership`` (mode, uid, gid) defaults to what mien last gave the file, else the
    existing file's, or 0644 and the owner :func:`owner_of` gives for a new file.
    """
    current = ctx.read(path)
    if ownership is None:
        ownership = ctx.ownership(path, current) or (0o644, *owner_of(ctx, path))
    mode, uid, gid = ownership
    fingerprint = _fingerprint(fmt, desired, header, ownership, delimiter, meta)
    if (
        record is not None
        and not is_released(record)
        and record.meta.get("input") == fingerprint
        and current.content is not None
        and record.written_hash == hashlib.sha256(current.content).hexdigest()
        and (current.mode, current.uid, current.gid) == ownership
    ):
        # Same inputs as last time and the file is exactly what mien wrote: merging again
        # would give the same bytes (merge is idempotent), so skip parsing and rendering.
        # This is what keeps a no-op re-apply in the low milliseconds.
        return FileSpec(path, current, dict(record.meta), summary, setting)
    previous: dict[str, Any] = {}
    if record is not None and not is_released(record) and record.meta.get("format") == fmt:
        previous = dict(record.meta)
    created = bool(previous.get("created", not current.exists))
    doc = load(fmt, current, path, what, delimiter)
    try:
        states = formats.merge(fmt, doc, desired, formats.keys_from_meta(previous.get("keys")))
        content = doc.render(header).encode()
    except formats.FormatError as exc:
        raise HandlerError(f"{what}: {exc}") from None
    return FileSpec(
        path,
        FileState(content, mode, uid, gid),
        {
            **(meta or {}),
            "format": fmt,
            "created": created,
            "keys": formats.keys_to_meta(states),
            "input": fingerprint,
        },
        summary,
        setting,
    )


def _fingerprint(
    fmt: str,
    desired: Mapping[formats.KeyPath, Any],
    header: str | None,
    ownership: tuple[int, int, int],
    delimiter: str,
    meta: Mapping[str, Any] | None,
) -> str:
    blob = json.dumps(
        [
            fmt,
            sorted(([list(k), v] for k, v in desired.items()), key=lambda kv: kv[0]),
            header,
            list(ownership),
            delimiter,
            dict(meta or {}),
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def released(
    ctx: Context, path: str, record: ManagedRecord, *, what: str, delimiter: str = " = "
) -> FileSpec | None:
    """``path`` with mien's keys taken out, because nothing manages it any more.

    A file mien created and that holds nothing else goes back to not existing (``desired``
    None: the engine restores its pristine absence); any other file keeps the user's part
    and stays recorded as released (see :func:`support.hold`).
    """
    fmt = str(record.meta.get("format", ""))
    if is_released(record):
        return hold(ctx, path, record.meta, f"{what}: no longer managed")
    current = ctx.read(path)
    created = bool(record.meta.get("created"))
    if not current.exists:
        return None if created else hold(ctx, path, record.meta, f"{what}: deleted by its user")
    doc = load(fmt, current, path, what, delimiter)
    formats.unmerge(doc, formats.keys_from_meta(record.meta.get("keys")))
    if created and doc.is_empty():
        return FileSpec(path, None, {}, f"{what}: no longer managed (mien created it)")
    keep = {k: v for k, v in record.meta.items() if k not in ("keys", "created")}
    return FileSpec(
        path,
        FileState(doc.render(None).encode(), current.mode, current.uid, current.gid),
        {**keep, "released": True},
        f"{what}: mien's keys taken out, the rest kept",
    )


def user_changes(
    ctx: Context, path: str, record: ManagedRecord
) -> list[tuple[formats.KeyPath, Any]]:
    """Managed keys the user changed in ``path`` since mien wrote it: ``(key path, value)``
    (value None: the user removed the key). A file that no longer parses yields nothing:
    the plan reports it."""
    if is_released(record):
        return []
    found = edited(ctx, path)
    if found is None:
        return []
    fmt = str(record.meta.get("format", ""))
    try:
        doc = formats.load(fmt, text_of(found[1], path))
    except (formats.FormatError, HandlerError):
        return []
    return list(formats.changed_keys(fmt, doc, formats.keys_from_meta(record.meta.get("keys"))))
