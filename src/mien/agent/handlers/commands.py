"""The ``commands`` handler: gives effect to ``command_overrides`` and ``restricted_commands``.

It decides (never writes; the engine does, through its journal):

* ``/etc/mien/routes.json``: the routing table ``mien exec`` and remote commands read;
* one shim per restricted or overridden command in ``/usr/local/lib/mien/shims/``: a plain
  POSIX ``sh`` script (no Python per command) that refuses the command with exit status 126,
  or logs the override and ``exec``\\ s the replacement with the same arguments;
* inline override scripts in ``/usr/local/lib/mien/overrides/<command>``;
* an operation that creates the per-uid command logs ``/var/log/mien/commands/<uid>.jsonl``
  that are missing (:mod:`.command_log` says why per uid, and what that does not prevent).
  The logs grow, so they are never managed files; a shim run as root creates root's.

A restricted *pattern* (``mkfs*``) gets shims for the matching commands installed in the
root's standard bin directories at apply time; ``mien exec`` matches the pattern itself, so
a command installed later is still refused there (and shimmed at the next apply).

The shims reach ``PATH`` through the environment handler, whose ``/etc/profile.d/mien.sh``
and environment.d file always put the shim directory first.

Switching personas needs no removal step here: the engine puts files that are no longer
managed back as they were before mien (absent, for the shims mien created).

Registered as the ``commands`` entry point (``pyproject.toml``); used by the engine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from typing import Any, ClassVar

from mien.agent.handlers import command_log
from mien.agent.handlers.base import (
    BaseHandler,
    Context,
    FileSpec,
    FileState,
    HandlerError,
    HandlerPlan,
    Note,
)
from mien.agent.router import (
    COMMANDS_LOG_DIR,
    LEGACY_COMMANDS_LOG,
    REFUSED,
    ROUTED_ENV,
    ROUTES_PATH,
    SHIMS_DIR,
    Replacement,
    RouteError,
    RoutingTable,
    is_pattern,
    refusal_message,
)
from mien.protocol.outcomes import Outcome, Reason
from mien.spec.models import Persona

BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# Installed files a pattern may shim: plain names only (a shim's name is also shell text).
_SHIMMABLE = re.compile(r"^[A-Za-z0-9_+@%,=][A-Za-z0-9._+@%,:=-]*$")


class CommandRoutesHandler(BaseHandler):
    name: ClassVar[str] = "commands"
    order: ClassVar[int] = 50
    settings: ClassVar[tuple[str, ...]] = ("command_overrides", "restricted_commands")

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        try:
            table = RoutingTable.from_persona(persona)
        except RouteError as exc:
            raise HandlerError(str(exc)) from exc
        out = HandlerPlan()
        out.files.append(
            FileSpec(
                ROUTES_PATH,
                FileState(table.to_json().encode(), 0o644),
                summary=f"command routing table of persona {table.persona!r}",
                setting="command_overrides",
            )
        )
        refused = restricted_names(ctx, table, out.notes)
        for command, pattern in sorted(refused.items()):
            out.files.append(
                FileSpec(
                    f"{SHIMS_DIR}/{command}",
                    FileState(restricted_shim(table.persona or "", command, pattern), 0o755),
                    summary=f"shim refusing {command!r} (exit status {REFUSED})",
                    setting="restricted_commands",
                )
            )
        for command, replacement in sorted(table.overrides.items()):
            setting = f"command_overrides.{command}"
            restriction = table.restriction_for(command)
            if restriction is not None:
                message = (
                    f"'{command}' also matches restricted_commands {restriction!r}: "
                    "the restriction wins, the command is refused"
                )
                out.notes.append(Note(setting, Outcome.FAILED, message))
                continue
            if replacement.inline:
                out.files.append(
                    FileSpec(
                        replacement.argv[0],
                        FileState((replacement.script or "").encode(), 0o755),
                        summary=f"inline override script for {command!r}",
                        setting=setting,
                    )
                )
            out.files.append(
                FileSpec(
                    f"{SHIMS_DIR}/{command}",
                    FileState(override_shim(table.persona or "", command, replacement), 0o755),
                    summary=f"shim running {replacement.describe()} for {command!r}",
                    setting=setting,
                )
            )
            out.notes.append(override_note(ctx, command, replacement))
        has_shims = any(f.path.startswith(SHIMS_DIR + "/") for f in out.files)
        if has_shims:
            operation = command_log.plan(ctx, self.name)
            if operation is not None:
                out.operations.append(operation)
        return out

    def perform(self, ctx: Context, data: Mapping[str, Any]) -> None:
        """Create the per-uid command logs that are missing (never truncating one)."""
        command_log.perform(ctx, data)

    def revert(self, ctx: Context, data: Mapping[str, Any]) -> None:
        """Undo of a failed apply: remove only the logs nothing was written to."""
        if data.get("path") == LEGACY_COMMANDS_LOG:  # journaled by an older mien
            path = ctx.host_path(LEGACY_COMMANDS_LOG)
            if path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
                path.unlink()
            return
        command_log.revert(ctx, data)


def restricted_names(ctx: Context, table: RoutingTable, notes: list[Note]) -> dict[str, str]:
    """Command name → the restricted name or pattern that refuses it. Exact names always get
    a shim (so installing the command later does not lift the restriction); patterns get
    one per matching command installed now."""
    installed: list[str] | None = None
    names: dict[str, str] = {}
    for pattern in table.restricted:
        if not is_pattern(pattern):
            names.setdefault(pattern, pattern)
            continue
        if installed is None:
            installed = installed_commands(ctx)
        import fnmatch

        matched = sorted(n for n in installed if fnmatch.fnmatchcase(n, pattern))
        for command in matched:
            names.setdefault(command, pattern)
        listed = ", ".join(matched) if matched else "none installed now"
        notes.append(
            Note(
                "restricted_commands",
                Outcome.APPLIED,
                f"pattern {pattern!r}: shims for {listed}; mien exec refuses any match",
            )
        )
    exact = sorted(p for p in table.restricted if not is_pattern(p))
    if exact:
        notes.append(
            Note(
                "restricted_commands",
                Outcome.APPLIED,
                f"refused by mien exec and shell shims (exit status {REFUSED}): {', '.join(exact)}",
            )
        )
    return names


def installed_commands(ctx: Context) -> list[str]:
    """Names in the root's standard bin directories (a fact read at plan time)."""
    found: set[str] = set()
    for directory in BIN_DIRS:
        host = ctx.host_path(directory)
        try:
            entries = list(os.scandir(host))
        except (FileNotFoundError, NotADirectoryError):
            continue
        found.update(
            e.name
            for e in entries
            if _SHIMMABLE.match(e.name) and not e.is_dir(follow_symlinks=False)
        )
    return sorted(found)


def override_note(ctx: Context, command: str, replacement: Replacement) -> Note:
    setting = f"command_overrides.{command}"
    head = replacement.argv[0]
    if not replacement.inline:
        present = ctx.exists(head) if head.startswith("/") else ctx.which(head) is not None
        if not present:
            return Note(
                setting,
                Outcome.PENDING,
                f"{command!r} will run {replacement.describe()}, but {head} is not installed "
                f"yet: running {command!r} fails with exit status 127 until it is",
                reason=Reason.NOT_INSTALLED,
            )
    return Note(setting, Outcome.APPLIED, f"{command!r} runs {replacement.describe()}")


# --- the shims -------------------------------------------------------------------------------

_PRELUDE = """\
#!/bin/sh
# mien command shim, generated for persona {persona_q}: {what}
# Rewritten at every apply and removed when the persona changes: do not edit.
# A guardrail, not a security boundary: /usr/bin/{name} etc. still run when called by path.
_mien_cmd={cmd_q}
_mien_shims={shims_q}
_mien_here=${{0%/*}}
case $0 in
  */usr/local/lib/mien/shims/*) _mien_root=${{0%/usr/local/lib/mien/shims/*}} ;;
  *) _mien_root= ;;
esac
_mien_nl='
'
_mien_tab='	'

# $1 as a JSON string in _mien_j (pure sh: only ", \\ and control characters are escaped).
_mien_json() {{
  _mien_s=$1 _mien_j=
  while :; do
    case $_mien_s in
      *[\\"\\\\[:cntrl:]]*) ;;
      *) break ;;
    esac
    _mien_p=${{_mien_s%%[\\"\\\\[:cntrl:]]*}}
    _mien_s=${{_mien_s#"$_mien_p"}}
    _mien_c=${{_mien_s%"${{_mien_s#?}}"}}
    _mien_s=${{_mien_s#?}}
    case $_mien_c in
      \\") _mien_c='\\"' ;;
      \\\\) _mien_c='\\\\' ;;
      "$_mien_nl") _mien_c='\\n' ;;
      "$_mien_tab") _mien_c='\\t' ;;
      *) _mien_c=$(printf '\\\\u%04x' "'$_mien_c") ;;
    esac
    _mien_j=$_mien_j$_mien_p$_mien_c
  done
  _mien_j=\\"$_mien_j$_mien_s\\"
}}

# Append one JSON line to the command log of the real uid, if it can be written; never
# fails the command. The uid and name come from `id` ($USER is whatever the caller says).
_mien_log() {{
  _mien_ev=$1
  shift
  _mien_id=$(LC_ALL=C id 2>/dev/null)
  _mien_uid=${{_mien_id#uid=}}
  _mien_uid=${{_mien_uid%%[!0-9]*}}
  [ -n "$_mien_uid" ] || return 0
  _mien_who=${{_mien_id#uid=$_mien_uid}}
  case $_mien_who in
    \\(*) _mien_who=${{_mien_who#?}} _mien_who=${{_mien_who%%\\)*}} ;;
    *) _mien_who=$_mien_uid ;;
  esac
  _mien_json "$_mien_cmd"
  _mien_a=$_mien_j
  for _mien_x in "$@"; do
    _mien_json "$_mien_x"
    _mien_a=$_mien_a,$_mien_j
  done
  _mien_json "local:$_mien_who"
  _mien_ts=$(date +%s 2>/dev/null)
  case $_mien_ts in ''|*[!0-9]*) _mien_ts=null ;; esac
  printf '{{"ts": %s, "event": "%s", "actor": %s, "uid": %s, "persona": %s, "command": %s, "argv": [%s], %s"via": "shim", "pid": %s}}\\n' \\
    "$_mien_ts" "$_mien_ev" "$_mien_j" "$_mien_uid" {persona_json_q} {cmd_json_q} "$_mien_a" {extra_q} "$$" \\
    2>/dev/null >>"$_mien_root{log_dir}/$_mien_uid.jsonl"
}}
"""

_FIND = """
# The real $1: the first executable on PATH outside the shim directories.
_mien_find() {
  _mien_found=
  _mien_ifs=$IFS
  IFS=:
  set -f
  for _mien_d in $PATH; do
    case $_mien_d in
      ''|"$_mien_here"|"$_mien_root$_mien_shims"|"$_mien_shims") continue ;;
    esac
    if [ -f "$_mien_d/$1" ] && [ -x "$_mien_d/$1" ]; then
      _mien_found=$_mien_d/$1
      break
    fi
  done
  IFS=$_mien_ifs
  set +f
  [ -n "$_mien_found" ]
}
"""


def _prelude(persona: str, command: str, what: str, extra: dict[str, object]) -> str:
    fragment = "".join(f"{json.dumps(k)}: {json.dumps(v)}, " for k, v in extra.items())
    return _PRELUDE.format(
        persona_q=persona,
        what=what,
        name=command,
        cmd_q=shlex.quote(command),
        shims_q=shlex.quote(SHIMS_DIR),
        persona_json_q=shlex.quote(json.dumps(persona)),
        cmd_json_q=shlex.quote(json.dumps(command)),
        extra_q=shlex.quote(fragment),
        log_dir=COMMANDS_LOG_DIR,
    )


def restricted_shim(persona: str, command: str, pattern: str) -> bytes:
    """A shim that refuses ``command`` exactly as ``mien exec`` does (message, status 126)."""
    head = _prelude(persona, command, f"{command!r} is restricted", {"pattern": pattern})
    message = shlex.quote(f"mien: {refusal_message(command, persona)}")
    body = f"\n_mien_log command.refused \"$@\"\nprintf '%s\\n' {message} >&2\nexit {REFUSED}\n"
    return (head + body).encode()


def override_shim(persona: str, command: str, replacement: Replacement) -> bytes:
    """A shim that logs the override and ``exec``\\ s the replacement with ``"$@"``. When the
    replacement itself runs ``command`` again (``MIEN_ROUTED`` lists it), the real command
    runs instead of the override, and the chain ends there."""
    what = f"{command!r} runs {replacement.describe()}"
    head = _prelude(persona, command, what, {"replacement": list(replacement.argv)})
    cmd = shlex.quote(command)
    args = " ".join(shlex.quote(a) for a in replacement.argv[1:])
    args = f"{args} " if args else ""
    first = replacement.argv[0]
    if replacement.inline or first.startswith("/"):  # a path on the machine: under its root
        launch = f'exec "$_mien_root"{shlex.quote(first)} {args}"$@"'
    else:
        missing = shlex.quote(
            f"mien: '{command}' is overridden by persona '{persona}' with "
            f"{replacement.describe()}, but {first} is not installed"
        )
        launch = (
            f"_mien_find {shlex.quote(first)} || {{ printf '%s\\n' {missing} >&2; exit 127; }}\n"
            f'exec "$_mien_found" {args}"$@"'
        )
    not_found = shlex.quote(f"mien: {command}: command not found")
    mark = ""
    if replacement.may_reenter(command):
        mark = f"{ROUTED_ENV}=${{{ROUTED_ENV}:+${ROUTED_ENV}:}}{cmd}\nexport {ROUTED_ENV}\n"
    body = f"""{_FIND}
case :${{{ROUTED_ENV}-}}: in
  *:{cmd}:*)
    # Run by its own replacement: the real command, and the chain ends here.
    unset {ROUTED_ENV}
    _mien_find {cmd} || {{ printf '%s\\n' {not_found} >&2; exit 127; }}
    exec "$_mien_found" "$@" ;;
esac
_mien_log command.overridden "$@"
{mark}{launch}
"""
    return (head + body).encode()
