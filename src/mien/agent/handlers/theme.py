"""``os_settings.theme`` → GTK's settings files and the GNOME desktop's defaults.

* ``~/.config/gtk-3.0/settings.ini`` and ``~/.config/gtk-4.0/settings.ini`` (the user's,
  merged key by key: ``[Settings] gtk-application-prefer-dark-theme=1|0`` for dark/light,
  ``gtk-theme-name`` for a theme name; the user's other keys and comments stay);
* ``/etc/dconf/db/local.d/50-mien-theme``, a dconf keyfile setting
  ``org/gnome/desktop/interface`` ``color-scheme`` (and ``gtk-theme`` for a name) as the
  machine's default, which each user may still override; it is always the persona's own
  theme, never a user's customization of it (that stays in the user's files);
* ``/etc/dconf/profile/user`` when missing (without ``system-db:local`` GNOME never reads
  that database);
* an operation running ``dconf update`` (inside the root via chroot) to compile the
  keyfiles, when dconf is installed; otherwise a ``pending`` note says the desktop reads
  the setting once dconf is installed and ``dconf update`` runs. Its undo writes the keyfile
  outside the engine's file journal: rollbacks undo operations before files, so the revert
  puts the keyfile's old bytes back itself (kept in the operation's data) and compiles
  them; the engine then restores the same bytes.

A user's edit of the GTK keys becomes the customization ``os_settings.theme``, which mien
then writes to that user's GTK files only.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from mien.agent import fileops
from mien.agent.handlers import formats, shared_files
from mien.agent.handlers.base import (
    BaseHandler,
    Captured,
    Context,
    FileSpec,
    FileState,
    HandlerError,
    HandlerPlan,
    Note,
    Operation,
)
from mien.agent.handlers.linedocs import control_char, shown
from mien.agent.handlers.programs import run_in_root
from mien.agent.handlers.support import header, text_of
from mien.protocol.outcomes import Outcome, Reason
from mien.spec.models import Persona

SETTING = "os_settings.theme"
KEYFILE = "/etc/dconf/db/local.d/50-mien-theme"
COMPILED = "/etc/dconf/db/local"
PROFILE = "/etc/dconf/profile/user"
PROFILE_TEXT = "user-db:user\nsystem-db:local\n"
SECTION = "Settings"
PREFER_DARK = "gtk-application-prefer-dark-theme"
THEME_NAME = "gtk-theme-name"


def checked(theme: str) -> str:
    """``theme`` if it can be written into GTK's and dconf's line-based files; a control
    character (a line break would add sections of its own) is refused."""
    bad = control_char(theme)
    if bad:
        raise HandlerError(
            f"{SETTING}: {shown(theme)!r} holds a {bad}; a theme is a name on one line"
        )
    return theme


def gtk_keys(theme: str) -> dict[formats.KeyPath, str]:
    """The ``settings.ini`` keys for a theme value."""
    low = checked(theme).strip().lower()
    if low in ("dark", "light"):
        return {(SECTION, PREFER_DARK): "1" if low == "dark" else "0"}
    return {(SECTION, THEME_NAME): theme.strip()}


def theme_from_gtk(key: str, value: Any) -> str | None:
    """The theme setting a user's edit of a GTK key means (None: not a theme change)."""
    if not isinstance(value, str):
        return None
    if key == PREFER_DARK:
        low = value.strip().lower()
        if low in ("1", "true"):
            return "dark"
        if low in ("0", "false"):
            return "light"
        return None
    return value.strip() or None


def _gvariant_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dconf_keyfile(persona: str, theme: str) -> str:
    """The dconf keyfile for a theme value."""
    low = checked(theme).strip().lower()
    lines = [header(persona, f"{SETTING} = {theme}"), "[org/gnome/desktop/interface]\n"]
    if low in ("dark", "light"):
        lines.append(
            f"color-scheme={_gvariant_string('prefer-dark' if low == 'dark' else 'default')}\n"
        )
    else:
        lines.append(f"gtk-theme={_gvariant_string(theme.strip())}\n")
    return "".join(lines)


def gtk_files(home: str) -> list[str]:
    base = home.rstrip("/")
    return [f"{base}/.config/gtk-3.0/settings.ini", f"{base}/.config/gtk-4.0/settings.ini"]


class ThemeHandler(BaseHandler):
    name: ClassVar[str] = "theme"
    settings: ClassVar[tuple[str, ...]] = (SETTING,)
    order: ClassVar[int] = 50

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        result = HandlerPlan()
        theme = persona.os_settings.theme  # the user's files: customizations included
        # The machine's default is the persona's: a user's own choice (an edit of their GTK
        # settings, captured as a customization) must not become every user's default.
        machine = ctx.authored().os_settings.theme if ctx.authored else theme
        for value in (theme, machine):
            if value:
                checked(value)  # before any file is planned
        previous = ctx.previous(self.name)
        gtk = gtk_files(ctx.user.home)
        for path in gtk:
            record = previous.get(path)
            if theme:
                result.files.append(
                    shared_files.merged(
                        ctx,
                        path,
                        "ini",
                        gtk_keys(theme),
                        record,
                        what=f"{SETTING} (GTK)",
                        header=header(
                            ctx.persona_name, "It sets the theme keys; others are yours."
                        ),
                        summary=f"GTK theme: {theme}",
                        setting=SETTING,
                        delimiter="=",
                    )
                )
            elif record is not None:
                spec = shared_files.released(ctx, path, record, what="GTK settings", delimiter="=")
                if spec is not None:
                    result.files.append(spec)
        # Files of another persona user, from an apply with a different --user.
        for path, record in sorted(previous.items()):
            if path not in gtk and path not in (KEYFILE, PROFILE):
                spec = shared_files.released(ctx, path, record, what="GTK settings", delimiter="=")
                if spec is not None:
                    result.files.append(spec)
        if theme:
            result.notes.append(
                Note(SETTING, Outcome.APPLIED, f"GTK 3/4 settings of {ctx.user.name}: {theme}")
            )
        if not machine:
            if KEYFILE in previous:
                self._dconf_update(ctx, result, ctx.read(KEYFILE), "default desktop theme removed")
            return result
        keyfile = dconf_keyfile(ctx.persona_name, machine).encode()
        result.files.append(
            FileSpec(
                KEYFILE,
                FileState(keyfile, 0o644, 0, 0),
                {},
                f"GNOME default: {machine}",
                # No setting: the machine default never carries a customization (a user's
                # theme stays theirs), so kept_files.misplaced must not count it as a file
                # a user's theme would be written to.
                "",
                capture_as=SETTING,  # root's edit of the keyfile is kept whole
            )
        )
        profile = ctx.read(PROFILE)
        if not profile.exists or PROFILE in previous:
            result.files.append(
                FileSpec(
                    PROFILE,
                    FileState(PROFILE_TEXT.encode(), 0o644, 0, 0),
                    {},
                    "dconf profile reading the local database",
                    "",  # fixed content, no setting of the persona in it
                )
            )
        elif "system-db:local" not in (text_of(profile, PROFILE) or ""):
            result.notes.append(
                Note(
                    SETTING,
                    Outcome.PENDING,
                    f"{PROFILE} does not list system-db:local: GNOME ignores the default "
                    "theme until it does",
                )
            )
        current = ctx.read(KEYFILE)
        compiled = ctx.host_path(COMPILED)
        stale = (
            current.content != keyfile
            or not compiled.exists()
            or compiled.stat().st_mtime < ctx.host_path(KEYFILE).stat().st_mtime
        )
        if stale:
            self._dconf_update(ctx, result, current, f"compile the desktop default ({machine})")
        return result

    def _dconf_update(self, ctx: Context, result: HandlerPlan, before: FileState, why: str) -> None:
        dconf = ctx.which("dconf")
        if dconf is None:
            result.notes.append(
                Note(
                    SETTING,
                    Outcome.PENDING,
                    "dconf not installed: GNOME reads the default theme once dconf is "
                    "installed and `dconf update` runs",
                    reason=Reason.NOT_INSTALLED,
                )
            )
            return
        result.operations.append(
            Operation(
                self.name,
                "theme:dconf-update",
                f"dconf update ({why})",
                {
                    "dconf": dconf,
                    "keyfile": KEYFILE,
                    # The keyfile's bytes as they were (any bytes: root may have edited
                    # it), for revert: JSON holds text, so base64.
                    "before_b64": (
                        None
                        if before.content is None
                        else base64.b64encode(before.content).decode("ascii")
                    ),
                    "mode": before.mode,
                    "uid": before.uid,
                    "gid": before.gid,
                },
            )
        )

    # --- operations --------------------------------------------------------------------

    def perform(self, ctx: Context, data: Mapping[str, Any]) -> None:
        run_in_root(ctx.root, [str(data["dconf"]), "update"], what="dconf update")

    def revert(self, ctx: Context, data: Mapping[str, Any]) -> None:
        # The engine undoes operations before it restores files, so the keyfile still
        # holds the new theme here: put its old bytes back first (the engine then writes
        # the same bytes), so the compiled database matches the restored keyfile.
        # This is the one write outside the engine's file journal, so everything it needs
        # to put the bytes back is in the operation's data.
        keyfile = str(data["keyfile"])
        if "before_b64" in data:
            encoded = data["before_b64"]
            before = None if encoded is None else base64.b64decode(str(encoded))
        else:  # an operation journaled by an earlier mien: the keyfile as text
            text = data.get("before")
            before = None if text is None else str(text).encode()
        if ctx.host_path(keyfile).parent.is_dir():
            state = FileState(
                before,
                int(data.get("mode", 0o644)),
                int(data.get("uid", 0)),
                int(data.get("gid", 0)),
            )
            fileops.write(ctx.root, keyfile, state)
        run_in_root(ctx.root, [str(data["dconf"]), "update"], what="dconf update")

    def finish(self, ctx: Context, data: Mapping[str, Any]) -> None:
        # Compile once more after the commit: the keyfile is final now whatever the order.
        run_in_root(ctx.root, [str(data["dconf"]), "update"], what="dconf update")

    # --- user edits --------------------------------------------------------------------

    def capture(self, ctx: Context, persona: Persona) -> list[Captured]:
        out: list[Captured] = []
        for path, record in sorted(ctx.previous(self.name).items()):
            if record.meta.get("format") != "ini":
                continue
            for (_, key), value in shared_files.user_changes(ctx, path, record):
                theme = theme_from_gtk(key, value)
                if theme is not None:
                    out.append(Captured(SETTING, theme, path))
        return out
