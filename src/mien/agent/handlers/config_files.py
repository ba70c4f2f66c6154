"""``application_configuration`` → the applications' own configuration files.

Each entry with a ``path`` is one file (``{home}`` and ``{user}`` are the persona user's;
files under the user's home belong to the user). A ``text`` file is the entry's
``content``, whole; the user's edit of it is kept whole by the engine for that path and its
owner (:mod:`mien.agent.kept_files`). A structured file (json, yaml, toml, ini,
env) is shared with its user: mien merges the persona's ``values`` into it, keeps every
key it does not manage, and records per key what was there before (see
:mod:`.shared_files`), so a persona switch puts the file back key by key, and a user's
edit of a managed key becomes ``application_configuration.<app>.values.<key>``. Entries
without a path are stored by the settings_store handler.
"""

from __future__ import annotations

from typing import ClassVar

from mien.agent.handlers import formats, shared_files
from mien.agent.handlers.base import (
    BaseHandler,
    Captured,
    Context,
    FileSpec,
    FileState,
    HandlerError,
    HandlerPlan,
    ManagedRecord,
)
from mien.agent.handlers.support import header, owner_of
from mien.agent.handlers.users import lookup_user
from mien.spec.keys import format_key
from mien.spec.models import AppConfig, Persona
from mien.spec.values import mien_own_dir

MERGED_NOTE = "It sets some keys; other keys are yours and kept."


def _setting(app: str) -> str:
    return format_key(("application_configuration", app))


class ConfigFilesHandler(BaseHandler):
    name: ClassVar[str] = "config_files"
    settings: ClassVar[tuple[str, ...]] = ("application_configuration",)
    order: ClassVar[int] = 50

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        result = HandlerPlan()
        previous = ctx.previous(self.name)
        wanted: dict[str, tuple[str, AppConfig]] = {}
        for app, cfg in persona.application_configuration.items():
            if cfg.path is None:
                continue
            path = ctx.expand(cfg.path)
            try:
                ctx.host_path(path)
            except HandlerError as exc:
                raise HandlerError(f"{_setting(app)}.path: {exc}") from None
            own = mien_own_dir(path)  # {home} may have led there
            if own is not None:
                raise HandlerError(
                    f"{_setting(app)}.path: {path} is in {own}, where mien keeps its own"
                    " files: a persona cannot manage it"
                )
            if path in wanted:
                raise HandlerError(
                    f"{_setting(app)} and {_setting(wanted[path][0])} both write {path}"
                )
            wanted[path] = (app, cfg)
        for path, (app, cfg) in wanted.items():
            result.files.append(self._file(ctx, path, app, cfg, previous.get(path)))
        for path, record in sorted(previous.items()):
            if path in wanted or record.meta.get("format", "text") == "text":
                continue  # a whole file no longer wanted: the engine restores it
            app = str(record.meta.get("app", ""))
            spec = shared_files.released(ctx, path, record, what=_setting(app))
            if spec is not None:
                result.files.append(spec)
        return result

    def _ownership(self, ctx: Context, path: str, app: str, cfg: AppConfig) -> tuple[int, int, int]:
        current = ctx.read(path)
        mode, uid, gid = ctx.ownership(path, current) or (0o644, *owner_of(ctx, path))
        if cfg.mode is not None:
            mode = int(cfg.mode, 8)
        if cfg.owner is not None:
            try:
                info = lookup_user(ctx.root, cfg.owner)
            except HandlerError:
                raise HandlerError(
                    f"{_setting(app)}.owner: there is no user {cfg.owner!r} in /etc/passwd"
                ) from None
            uid, gid = info.uid, info.gid
        return mode, uid, gid

    def _file(
        self, ctx: Context, path: str, app: str, cfg: AppConfig, record: ManagedRecord | None
    ) -> FileSpec:
        fmt = cfg.effective_format
        ownership = self._ownership(ctx, path, app, cfg)
        setting = _setting(app)
        if fmt == "text":
            return FileSpec(
                path,
                FileState((cfg.content or "").encode(), *ownership),
                {"app": app, "format": "text"},
                f"{app}: whole file",
                setting,
                capture_as=f"{setting}.content",
            )
        try:
            desired = formats.flatten(fmt, cfg.values or {})
        except formats.FormatError as exc:
            raise HandlerError(f"{setting}.values: {exc}") from None
        prefix = formats.comment_prefix(fmt)
        return shared_files.merged(
            ctx,
            path,
            fmt,
            desired,
            record,
            what=setting,
            header=header(ctx.persona_name, MERGED_NOTE, prefix) if prefix else None,
            summary=f"{app}: {len(desired)} key(s) merged ({fmt})",
            setting=setting,
            meta={"app": app},
            ownership=ownership,
        )

    def capture(self, ctx: Context, persona: Persona) -> list[Captured]:
        out: list[Captured] = []
        for path, record in sorted(ctx.previous(self.name).items()):
            app = str(record.meta.get("app", ""))
            # A text file's edit is kept whole by the engine, for its path and owner
            # (never as a value another persona could write into another file).
            if record.meta.get("format", "text") != "text":
                for key_path, value in shared_files.user_changes(ctx, path, record):
                    key = format_key(("application_configuration", app, "values", *key_path))
                    out.append(Captured(key, value, path))
        return out
