"""``os_settings.terminal_shell`` → the persona user's login shell in ``/etc/passwd``.

Only the shell field of the user's line changes; every other byte of the file stays (users
added since mien last wrote it included). The shell must be listed in ``/etc/shells`` —
what ``chsh`` requires too — by absolute path, or by name matching an entry's basename
(``zsh`` → ``/usr/bin/zsh``). A shell the persona itself installs with apt in the same
apply is accepted (its package lists it in ``/etc/shells`` when installed). The shell the
user had before mien is kept in the file's meta and put back when no persona sets one; a
``chsh`` by the user becomes the customization ``os_settings.terminal_shell``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Collection
from typing import ClassVar

from mien.agent.handlers.base import (
    BaseHandler,
    Captured,
    Context,
    FileSpec,
    FileState,
    HandlerError,
    HandlerPlan,
    ManagedRecord,
    Note,
)
from mien.agent.handlers.support import edited, hold, is_released, text_of
from mien.spec.models import Persona

PASSWD = "/etc/passwd"
SHELLS = "/etc/shells"
SETTING = "os_settings.terminal_shell"


def listed_shells(text: str) -> list[str]:
    """The entries of an ``/etc/shells`` text."""
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def choose_shell(
    want: str,
    listed: list[str],
    installed: Callable[[str], bool],
    installing: Collection[str] = (),
) -> tuple[str, bool]:
    """The login shell for a ``terminal_shell`` value and whether it is installed now.

    Raises :class:`HandlerError` listing the available shells when ``want`` is not listed
    (and not about to be installed by the persona's own apt packages).
    """
    want = want.strip()
    if not want or ":" in want or "\n" in want:
        raise HandlerError(f"{SETTING}: {want!r} is not a shell name or path")
    base = posixpath.basename(want)
    if want.startswith("/"):
        candidates = [s for s in listed if s == want]
    else:
        candidates = [s for s in listed if posixpath.basename(s) == want]
    present = [s for s in candidates if installed(s)]
    if present:
        return present[0], True
    if base in installing:
        return (want if want.startswith("/") else f"/usr/bin/{base}"), False
    if candidates:
        return candidates[0], False
    available = [s for s in listed if installed(s)] or listed
    shown = ", ".join(available) if available else "none"
    raise HandlerError(
        f"{SETTING}: {want!r} is not a login shell on this machine (not in {SHELLS}); "
        f"install it (e.g. apt: {base}) or choose one of: {shown}"
    )


def passwd_shell(text: str, user: str) -> str | None:
    """The shell field of ``user``'s line (None when the user has no line)."""
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == user:
            return fields[6]
    return None


def with_shell(text: str, user: str, shell: str) -> str:
    """``text`` with ``user``'s shell field replaced; every other byte kept."""
    out: list[str] = []
    found = False
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        fields = body.split(":")
        if len(fields) >= 7 and fields[0] == user and not found:
            fields[6] = shell
            line = ":".join(fields) + line[len(body) :]
            found = True
        out.append(line)
    if not found:
        raise HandlerError(
            f"user {user!r} has no line in {PASSWD} (a network account?): mien sets the "
            "login shell of local users only"
        )
    return "".join(out)


class LoginShellHandler(BaseHandler):
    name: ClassVar[str] = "login_shell"
    settings: ClassVar[tuple[str, ...]] = (SETTING,)
    order: ClassVar[int] = 50

    def _record(self, ctx: Context) -> ManagedRecord | None:
        record = ctx.managed.get(PASSWD)
        return record if record is not None and record.handler == self.name else None

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        result = HandlerPlan()
        record = self._record(ctx)
        want = persona.os_settings.terminal_shell
        current = ctx.read(PASSWD)
        text = text_of(current, PASSWD)
        if text is None:
            if want:
                raise HandlerError(f"{SETTING}: {PASSWD} does not exist in this root")
            return result
        active = record is not None and not is_released(record)
        meta = dict(record.meta) if record is not None and active else {}
        if meta and meta.get("user") != ctx.user.name:
            # Another persona user had their shell set: give them theirs back first.
            text = with_shell(text, str(meta["user"]), str(meta["pristine"]))
            meta = {}
        if not want:
            if record is None:
                return result
            if not active:
                result.files.append(hold(ctx, PASSWD, record.meta, "login shell not managed"))
                return result
            restored = with_shell(text, str(record.meta["user"]), str(record.meta["pristine"]))
            result.files.append(
                FileSpec(
                    PASSWD,
                    FileState(restored.encode(), current.mode, current.uid, current.gid),
                    {"user": record.meta["user"], "released": True},
                    f"login shell of {record.meta['user']} back to {record.meta['pristine']}",
                    SETTING,
                )
            )
            return result
        shells_text = text_of(ctx.read(SHELLS), SHELLS) or ""
        installing = {p.name for p in persona.required_applications if p.manager == "apt"}
        shell, present = choose_shell(
            want,
            listed_shells(shells_text),
            lambda s: ctx.host_path(s).is_file(),
            installing,
        )
        pristine = meta.get("pristine", passwd_shell(text, ctx.user.name))
        new_text = with_shell(text, ctx.user.name, shell)
        result.files.append(
            FileSpec(
                PASSWD,
                FileState(new_text.encode(), current.mode, current.uid, current.gid),
                {"user": ctx.user.name, "pristine": pristine, "written": shell},
                f"login shell of {ctx.user.name}: {shell}",
                SETTING,
            )
        )
        if present:
            result.notes.append(Note(SETTING, "applied", f"{ctx.user.name} logs in with {shell}"))
        elif posixpath.basename(shell) in installing:
            result.notes.append(
                Note(SETTING, "applied", f"{shell}, installed by this persona's apt packages")
            )
        else:
            result.notes.append(
                Note(
                    SETTING,
                    "pending",
                    f"{shell} is listed in {SHELLS} but not installed: "
                    f"{ctx.user.name} cannot log in until it is",
                )
            )
        return result

    def capture(self, ctx: Context, persona: Persona) -> list[Captured]:
        record = self._record(ctx)
        if record is None or is_released(record):
            return []
        found = edited(ctx, PASSWD)
        if found is None:
            return []
        text = text_of(found[1], PASSWD) or ""
        shell = passwd_shell(text, str(record.meta.get("user")))
        if shell is None or shell == record.meta.get("written"):
            return []  # the change is elsewhere in the file (a new user…): not ours
        return [Captured(SETTING, shell, PASSWD)]
