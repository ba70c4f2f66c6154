"""``application_settings.ide_extensions`` → extensions installed by the editor's own CLI.

The editor comes from ``os_settings.editor`` (VS Code ``code`` or VSCodium ``codium``;
unset: whichever is installed). When its CLI is in the root, ``plan`` lists the user's
installed extensions (``code --list-extensions``, run as the persona user, through chroot
under another root) and returns one operation per missing extension
(``--install-extension``; undone with ``--uninstall-extension``). Extensions mien installed
for an earlier persona and no longer wanted are uninstalled; those the user had before mien
are never touched. What mien installed is kept in ``/var/lib/mien/records/ide-extensions.json``
(a managed file, so it follows rollbacks). Without the editor nothing is claimed: a
``pending`` note says how many extensions wait for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from mien.agent.handlers.base import (
    BaseHandler,
    Context,
    FileSpec,
    FileState,
    HandlerError,
    HandlerPlan,
    Note,
    Operation,
)
from mien.agent.handlers.extension_ids import VSCODE_ID, ide_extension, normalise
from mien.agent.handlers.programs import RunAs, child_env, run_in_root
from mien.agent.handlers.support import RECORDS_DIR
from mien.protocol.outcomes import Outcome, Reason
from mien.spec.models import Persona

SETTING = "application_settings.ide_extensions"
RECORD = f"{RECORDS_DIR}/ide-extensions.json"
EDITORS: dict[str, tuple[str, str, str]] = {
    # editor setting → (CLI, title, its data directory under ~/.config)
    "code": ("code", "VS Code", "Code"),
    "vscode": ("code", "VS Code", "Code"),
    "vs code": ("code", "VS Code", "Code"),
    "visual studio code": ("code", "VS Code", "Code"),
    "code --wait": ("code", "VS Code", "Code"),
    "codium": ("codium", "VSCodium", "VSCodium"),
    "vscodium": ("codium", "VSCodium", "VSCodium"),
    "codium --wait": ("codium", "VSCodium", "VSCodium"),
}


def bare_id(extension: str) -> str:
    """``Publisher.Name@1.2`` → ``publisher.name`` (ids compare without case or version)."""
    return extension.split("@", 1)[0].lower()


def parse_extension_list(output: str) -> set[str]:
    """The ids in ``code --list-extensions`` output (other lines, e.g. warnings, ignored)."""
    return {bare_id(line.strip()) for line in output.splitlines() if VSCODE_ID.match(line.strip())}


def resolve(entries: list[str]) -> tuple[list[str], list[str]]:
    """Marketplace ids (in order, without duplicates) and the entries nothing knows."""
    ids: list[str] = []
    unknown: list[str] = []
    for entry in entries:
        found = ide_extension(entry)
        if found is None:
            unknown.append(entry)
        elif bare_id(found) not in {bare_id(i) for i in ids}:
            ids.append(found)
    return ids, unknown


def _cli_args(user: RunAs, data_dir: str) -> list[str]:
    # VS Code refuses to run as root unless given its own user data directory.
    return [f"--user-data-dir={user.home.rstrip('/')}/.config/{data_dir}"] if user.uid == 0 else []


class IdeExtensionsHandler(BaseHandler):
    name: ClassVar[str] = "ide_extensions"
    settings: ClassVar[tuple[str, ...]] = (SETTING,)
    order: ClassVar[int] = 30

    def _installed(self, ctx: Context, cli: str, user: RunAs, data_dir: str) -> set[str]:
        output = ctx.inspect(
            [cli, *_cli_args(user, data_dir), "--list-extensions"],
            user=user,
            timeout=120,
            what=f"{cli} --list-extensions",
        )
        return parse_extension_list(output)

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        result = HandlerPlan()
        ids, unknown = resolve(persona.application_settings.ide_extensions or [])
        for entry in unknown:
            result.notes.append(
                Note(
                    SETTING,
                    Outcome.FAILED,
                    f"{entry!r} is not an editor extension mien knows: not applied (give its "
                    "Marketplace id, publisher.name)",
                )
            )
        record = ctx.managed.get(RECORD)
        meta: Mapping[str, Any] = record.meta if record and record.handler == self.name else {}
        if not ids and not meta.get("installed"):
            return result
        user = RunAs.of(ctx)
        editor = self._editor(ctx, result, persona.os_settings.editor, len(ids))
        kept = self._clean_up(ctx, result, meta, ids, user, editor[0] if editor else None)
        if editor is not None and ids:
            cli, title, data_dir = editor
            try:
                installed = self._installed(ctx, cli, user, data_dir)
            except HandlerError as exc:
                # A broken editor must not block the rest of the persona: say so instead.
                result.notes.append(Note(SETTING, Outcome.FAILED, f"extensions not applied: {exc}"))
                return result
            missing = [i for i in ids if bare_id(i) not in installed]
            for ext in missing:
                self._op(result, "install", cli, ext, user, data_dir)
            kept += [e for e in missing if bare_id(e) not in {bare_id(k) for k in kept}]
            result.notes.append(
                Note(
                    SETTING,
                    Outcome.APPLIED,
                    f"{title} of {user.name}: {len(ids) - len(missing)} extension(s) present, "
                    f"{len(missing)} to install",
                )
            )
        if kept and editor is not None:
            cli, _, data_dir = editor
            doc = {
                "managed_by": "mien",
                "persona": ctx.persona_name,
                "editor": cli,
                "user": user.name,
                "installed_by_mien": kept,
            }
            result.files.append(
                FileSpec(
                    RECORD,
                    FileState((json.dumps(doc, indent=2) + "\n").encode(), 0o644, 0, 0),
                    {
                        "installed": kept,
                        "editor": cli,
                        "user": user.as_data(),
                        "data_dir": data_dir,
                    },
                    f"editor extensions mien installed: {len(kept)}",
                    SETTING,
                )
            )
        return result

    def _editor(
        self, ctx: Context, result: HandlerPlan, setting: str | None, count: int
    ) -> tuple[str, str, str] | None:
        """The editor CLI (path in the root), its title and data directory; None (with a
        note) when the persona's editor has no CLI mien drives or it is not installed."""
        known = EDITORS.get(normalise(setting)) if setting else None
        if setting and known is None:
            if count:
                result.notes.append(
                    Note(
                        SETTING,
                        Outcome.STORED,
                        f"editor {setting!r} has no extension installer mien drives: "
                        f"{count} extension(s) not applied",
                        reason=Reason.UNSUPPORTED,
                    )
                )
            return None
        candidates = [known] if known else [EDITORS["code"], EDITORS["codium"]]
        for cli, title, data_dir in candidates:
            path = ctx.which(cli)
            if path is not None:
                return path, title, data_dir
        if count:
            result.notes.append(
                Note(
                    SETTING,
                    Outcome.PENDING,
                    f"{candidates[0][1]} not installed: {count} extension(s) not applied",
                    reason=Reason.NOT_INSTALLED,
                )
            )
        return None

    def _clean_up(
        self,
        ctx: Context,
        result: HandlerPlan,
        meta: Mapping[str, Any],
        ids: list[str],
        user: RunAs,
        cli: str | None,
    ) -> list[str]:
        """Uninstall what mien installed last time and is no longer wanted (for that user,
        with that editor); returns what mien installed that stays."""
        before = [str(e) for e in meta.get("installed", [])]
        old_cli = str(meta.get("editor") or "")
        if not before or not old_cli or not ctx.exists(old_cli):
            return []  # the editor is gone, and its extensions with it
        old_user = RunAs.from_data(meta["user"]) if meta.get("user") else user
        data_dir = str(meta.get("data_dir", "Code"))
        same = old_user == user and old_cli == cli
        wanted = {bare_id(i) for i in ids} if same else set()
        try:
            present = self._installed(ctx, old_cli, old_user, data_dir)
        except HandlerError as exc:
            result.notes.append(
                Note(SETTING, Outcome.FAILED, f"extensions mien installed were not removed: {exc}")
            )
            return []
        for ext in before:
            if bare_id(ext) in present and bare_id(ext) not in wanted:
                self._op(result, "uninstall", old_cli, ext, old_user, data_dir)
        return [e for e in before if bare_id(e) in present and bare_id(e) in wanted]

    def _op(
        self, result: HandlerPlan, action: str, cli: str, ext: str, user: RunAs, data_dir: str
    ) -> None:
        result.operations.append(
            Operation(
                self.name,
                f"ide:{action}:{user.name}:{bare_id(ext)}",
                f"{action} editor extension {ext} for {user.name}",
                {
                    "action": action,
                    "cli": cli,
                    "extension": ext,
                    "user": user.as_data(),
                    "data_dir": data_dir,
                },
            )
        )

    # --- operations --------------------------------------------------------------------

    def _run(self, ctx: Context, data: Mapping[str, Any], action: str) -> None:
        user = RunAs.from_data(data["user"])
        cli, ext, data_dir = str(data["cli"]), str(data["extension"]), str(data["data_dir"])
        flag = "--install-extension" if action == "install" else "--uninstall-extension"
        run_in_root(
            ctx.root,
            [cli, *_cli_args(user, data_dir), flag, ext],
            user=user,
            env=child_env(ctx.env, user),
            timeout=600,
            what=f"{cli} {flag} {ext}",
        )

    def perform(self, ctx: Context, data: Mapping[str, Any]) -> None:
        self._run(ctx, data, str(data["action"]))

    def revert(self, ctx: Context, data: Mapping[str, Any]) -> None:
        # Works from the data alone, whatever part of perform happened before a crash.
        user = RunAs.from_data(data["user"])
        present = bare_id(str(data["extension"])) in self._installed(
            ctx, str(data["cli"]), user, str(data["data_dir"])
        )
        if data["action"] == "install" and present:
            self._run(ctx, data, "uninstall")
        elif data["action"] == "uninstall" and not present:
            self._run(ctx, data, "install")
