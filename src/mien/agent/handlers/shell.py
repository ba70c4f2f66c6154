"""``os_settings.terminal_shell`` → the persona user's login shell in ``/etc/passwd``.

Only the shell field of the user's line changes, by an operation that rewrites the file
atomically with every other byte kept. ``/etc/passwd`` is deliberately *not* a managed
file: the engine restores managed files byte for byte on rollback, which would also undo
accounts added or changed since — here a rollback sets the shell field back and nothing
else. The shell must be listed in ``/etc/shells`` (what ``chsh`` requires too), by
absolute path or by name matching an entry's basename (``zsh`` → ``/usr/bin/zsh``); a
shell the persona installs with apt in the same apply is accepted (its package lists it
when installed). A listed shell that is not installed and that the persona does not
install is refused at plan time, before anything changes: the user could not log in. The
shell the user had before mien is kept in ``/var/lib/mien/records/login-shell.json`` and
put back when no persona sets one. A shell the user chose with ``chsh`` after mien set one is left alone (and said so).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar

from mien.agent import fileops
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
from mien.agent.handlers.support import RECORDS_DIR, text_of
from mien.protocol.outcomes import Outcome, Reason
from mien.spec.models import Persona

PASSWD = "/etc/passwd"
SHELLS = "/etc/shells"
RECORD = f"{RECORDS_DIR}/login-shell.json"
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

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        result = HandlerPlan()
        record = ctx.managed.get(RECORD)
        meta: Mapping[str, Any] = record.meta if record and record.handler == self.name else {}
        want = persona.os_settings.terminal_shell
        text = text_of(ctx.read(PASSWD), PASSWD)
        if text is None:
            if want:
                raise HandlerError(f"{SETTING}: {PASSWD} does not exist in this root")
            return result
        if meta and meta.get("user") != ctx.user.name:
            # Another persona user had their shell set by mien: give them theirs back.
            self._restore(result, text, meta)
            meta = {}
        if not want:
            if meta:
                self._restore(result, text, meta)
            return result
        current = passwd_shell(text, ctx.user.name)
        if current is None:
            raise HandlerError(
                f"{SETTING}: user {ctx.user.name!r} has no line in {PASSWD} (a network "
                "account?): mien sets the login shell of local users only"
            )
        installing = {p.name for p in persona.required_applications if p.manager == "apt"}
        shells = listed_shells(text_of(ctx.read(SHELLS), SHELLS) or "")
        shell, present = choose_shell(
            want, shells, lambda s: ctx.host_path(s).is_file(), installing
        )
        written = str(meta.get("written", "")) if meta else ""
        kept = bool(meta) and current != written
        if (
            not kept
            and not present
            and current != shell
            and posixpath.basename(shell) not in installing
        ):
            # Setting it would lock the user out: refuse the whole apply, before any change.
            raise HandlerError(
                f"{SETTING}: {shell} is listed in {SHELLS} but not installed in this root, "
                f"and this persona does not install it: {ctx.user.name} could not log in; "
                f"add {posixpath.basename(shell)!r} to required_applications (apt) or install it"
            )
        if kept:
            # The user ran chsh after mien set the shell: their choice stands.
            result.notes.append(
                Note(
                    SETTING,
                    Outcome.STORED,
                    f"{ctx.user.name} chose {current} (chsh) after mien set {written}: kept; "
                    f"set it with `mien customize set {SETTING} ...` to change it",
                    reason=Reason.USER_CHOICE,
                )
            )
            shell = written
        elif current != shell:
            result.operations.append(self._op(ctx.user.name, current, shell))
        pristine = str(meta["pristine"]) if meta else current
        document = {
            "managed_by": "mien",
            "persona": ctx.persona_name,
            "user": ctx.user.name,
            "shell": shell,
            "before_mien": pristine,
        }
        result.files.append(
            FileSpec(
                RECORD,
                FileState((json.dumps(document, indent=2) + "\n").encode(), 0o644, 0, 0),
                {"user": ctx.user.name, "pristine": pristine, "written": shell},
                f"login shell of {ctx.user.name}: {shell} (was {pristine} before mien)",
                SETTING,
            )
        )
        if kept:
            return result
        if present:
            result.notes.append(
                Note(SETTING, Outcome.APPLIED, f"{ctx.user.name} logs in with {shell}")
            )
        elif posixpath.basename(shell) in installing:
            result.notes.append(
                Note(SETTING, Outcome.APPLIED, f"{shell}, installed by this persona's apt packages")
            )
        else:  # set before (by mien or not) and removed since: nothing mien would change
            result.notes.append(
                Note(
                    SETTING,
                    Outcome.PENDING,
                    f"{shell} is listed in {SHELLS} but not installed: "
                    f"{ctx.user.name} cannot log in until it is",
                    reason=Reason.NOT_INSTALLED,
                )
            )
        return result

    def _op(self, user: str, old: str, new: str) -> Operation:
        return Operation(
            self.name,
            f"login-shell:{user}",
            f"login shell of {user}: {old} → {new}",
            {"user": user, "old": old, "new": new},
        )

    def _restore(self, result: HandlerPlan, text: str, meta: Mapping[str, Any]) -> None:
        """Put the shell mien replaced back, unless the user chose another one since."""
        user, written = str(meta["user"]), str(meta.get("written"))
        if passwd_shell(text, user) == written and written != meta["pristine"]:
            result.operations.append(self._op(user, written, str(meta["pristine"])))

    # --- operations --------------------------------------------------------------------

    def _set(self, ctx: Context, user: str, expect: str, shell: str) -> None:
        current = ctx.read(PASSWD)
        text = text_of(current, PASSWD) or ""
        if passwd_shell(text, user) != expect:
            return  # already done (or changed by someone else): nothing to undo or redo
        changed = FileState(
            with_shell(text, user, shell).encode(), current.mode, current.uid, current.gid
        )
        fileops.write(ctx.root, PASSWD, changed)

    def perform(self, ctx: Context, data: Mapping[str, Any]) -> None:
        self._set(ctx, str(data["user"]), str(data["old"]), str(data["new"]))

    def revert(self, ctx: Context, data: Mapping[str, Any]) -> None:
        self._set(ctx, str(data["user"]), str(data["new"]), str(data["old"]))
