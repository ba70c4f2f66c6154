"""``environment_variables`` (plus ``EDITOR``/``VISUAL`` from ``os_settings.editor`` and
``LOG_LEVEL`` from ``behavioral_settings.logging_level``) → the login environment.

Two files carry the same variables: ``/etc/profile.d/mien.sh`` for login shells (POSIX sh,
every value single-quoted) and ``/etc/environment.d/50-mien.conf`` for systemd user
sessions and the graphical programs they start. Both always put the command router's
shims (``/usr/local/lib/mien/shims``) first on ``PATH`` — idempotently, so re-sourcing
the profile does not grow ``PATH`` — and the persona's pip virtualenv, when it has one,
last. An explicit ``environment_variables`` entry wins over a derived one. A user's edit
of a variable in either file becomes the customization ``environment_variables.NAME``.
"""

from __future__ import annotations

from typing import ClassVar

from mien.agent.handlers.base import (
    BaseHandler,
    Captured,
    Context,
    FileSpec,
    FileState,
    HandlerPlan,
    Note,
)
from mien.agent.handlers.quoting import envd_word, parse_envd, parse_sh_assignments, sh_word
from mien.agent.handlers.support import (
    NPM_DIR,
    SHIMS_DIR,
    VENVS_DIR,
    edited,
    header,
    text_of,
)
from mien.protocol.outcomes import Outcome, Reason
from mien.spec.models import Persona

PROFILE = "/etc/profile.d/mien.sh"
ENVIRONMENT_D = "/etc/environment.d/50-mien.conf"
PATH_BEGIN = "# mien: PATH (begin)"
PATH_END = "# mien: PATH (end)"
EDIT_NOTE = "Edits to variables here become customizations on the next apply."

# Well-known editor names → the command EDITOR should hold (GUI editors must wait for
# the file to be closed, or `git commit` returns at once with an empty message).
EDITORS: dict[str, str] = {
    "vscode": "code --wait",
    "vs code": "code --wait",
    "visual studio code": "code --wait",
    "code": "code --wait",
    "code --wait": "code --wait",
    "vscodium": "codium --wait",
    "codium": "codium --wait",
    "vim": "vim",
    "vi": "vi",
    "nvim": "nvim",
    "neovim": "nvim",
    "nano": "nano",
    "emacs": "emacs",
    "micro": "micro",
    "helix": "hx",
    "hx": "hx",
    "kakoune": "kak",
    "kak": "kak",
    "joe": "joe",
    "mcedit": "mcedit",
    "ed": "ed",
    "sublime": "subl --wait",
    "sublime text": "subl --wait",
    "subl": "subl --wait",
    "gedit": "gedit --wait",
    "kate": "kate --block",
    "zed": "zed --wait",
}


def editor_command(name: str) -> str:
    """The ``EDITOR`` value for an editor setting (a well-known name or a command)."""
    key = " ".join(name.lower().replace("_", " ").split())
    return EDITORS.get(key, EDITORS.get(key.replace("-", " "), name.strip()))


def desired_variables(persona: Persona) -> dict[str, str]:
    """The variables a persona sets: explicit ones first, then derived ones."""
    out = dict(persona.environment_variables)
    if persona.os_settings.editor:
        command = editor_command(persona.os_settings.editor)
        out.setdefault("EDITOR", command)
        out.setdefault("VISUAL", command)
    level = persona.behavioral_settings.logging_level
    if level:
        out.setdefault("LOG_LEVEL", level.upper())
    return out


def venv_bin(persona: Persona, persona_name: str) -> str | None:
    """The ``bin`` directories of the persona's pip virtualenv and npm prefix, if it has
    pip or npm packages (appended to PATH, as one ``:``-separated entry)."""
    managers = {p.manager for p in persona.required_applications}
    bins = [f"{VENVS_DIR}/{persona_name}/bin"] if "pip" in managers else []
    if "npm" in managers:
        bins.append(f"{NPM_DIR}/{persona_name}/bin")
    return ":".join(bins) or None


def render_profile(persona_name: str, variables: dict[str, str], venv: str | None) -> str:
    lines = [header(persona_name, EDIT_NOTE)]
    lines += [f"export {name}={sh_word(name, value)}\n" for name, value in variables.items()]
    shims = SHIMS_DIR
    lines += [
        f"{PATH_BEGIN}\n",
        "# The command router's shims come first (also when this file is sourced again).\n",
        '_mien_p=":${PATH}:"\n',
        "while :; do\n",
        '    case "$_mien_p" in\n',
        f'        *:{shims}:*) _mien_p="${{_mien_p%%:{shims}:*}}:${{_mien_p#*:{shims}:}}" ;;\n',
        "        *) break ;;\n",
        "    esac\n",
        "done\n",
        '_mien_p="${_mien_p#:}"\n',
        '_mien_p="${_mien_p%:}"\n',
        f'PATH="{shims}${{_mien_p:+:$_mien_p}}"\n',
    ]
    if venv:
        lines.append(f'case ":$PATH:" in *:{venv}:*) ;; *) PATH="$PATH:{venv}" ;; esac\n')
    lines += ["export PATH\n", "unset _mien_p\n", f"{PATH_END}\n"]
    return "".join(lines)


def _envd_path(variables: dict[str, str], venv: str | None) -> str:
    """The PATH value for environment.d: shims, the persona's PATH (or the inherited one),
    then the virtualenv."""
    middle = variables.get("PATH", "${PATH}")
    return f"{SHIMS_DIR}:{middle}" + (f":{venv}" if venv else "")


def render_environment_d(persona_name: str, variables: dict[str, str], venv: str | None) -> str:
    lines = [header(persona_name, EDIT_NOTE)]
    for name, value in variables.items():
        if name == "PATH":
            continue
        if value == "":
            # systemd refuses an empty assignment here ("invalid syntax"): login shells
            # still get it from the profile.
            lines.append(f"# {name} is empty: set for login shells only\n")
            continue
        lines.append(f"{name}={envd_word(name, value)}\n")
    lines.append(f"PATH={envd_word('PATH', _envd_path(variables, venv))}\n")
    return "".join(lines)


def _persona_path(value: str, venv: str | None) -> str:
    """Undo what environment.d adds around PATH, to get the value a persona would write."""
    if value.startswith(SHIMS_DIR + ":"):
        value = value[len(SHIMS_DIR) + 1 :]
    if venv and value.endswith(":" + venv):
        value = value[: -len(venv) - 1]
    return value


class EnvironmentHandler(BaseHandler):
    name: ClassVar[str] = "environment"
    settings: ClassVar[tuple[str, ...]] = (
        "environment_variables",
        "os_settings.editor",
        "behavioral_settings.logging_level",
    )
    order: ClassVar[int] = 40

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        variables = desired_variables(persona)
        venv = venv_bin(persona, ctx.persona_name)
        profile = render_profile(ctx.persona_name, variables, venv)
        envd = render_environment_d(ctx.persona_name, variables, venv)
        written_profile = parse_sh_assignments(profile, (PATH_BEGIN, PATH_END))
        written_envd = parse_envd(envd)
        names = ", ".join(variables) or "no variables"
        result = HandlerPlan(
            files=[
                FileSpec(
                    PROFILE,
                    FileState(profile.encode(), 0o644, 0, 0),
                    {"vars": written_profile, "venv": venv},
                    f"login shells: {names}; shims first on PATH",
                    "environment_variables",
                ),
                FileSpec(
                    ENVIRONMENT_D,
                    FileState(envd.encode(), 0o644, 0, 0),
                    {"vars": written_envd, "venv": venv},
                    f"systemd user sessions: {names}; shims first on PATH",
                    "environment_variables",
                ),
            ]
        )
        if persona.environment_variables:
            result.notes.append(
                Note(
                    "environment_variables",
                    Outcome.APPLIED,
                    f"{len(persona.environment_variables)} variable(s) for new login and "
                    "desktop sessions (running sessions keep their environment)",
                )
            )
        if persona.os_settings.editor:
            command = variables["EDITOR"]
            program = command.split()[0] if command.split() else command
            found = ctx.exists(program) if program.startswith("/") else ctx.which(program)
            if found:
                result.notes.append(
                    Note(
                        "os_settings.editor", Outcome.APPLIED, f"EDITOR and VISUAL are {command!r}"
                    )
                )
            else:
                result.notes.append(
                    Note(
                        "os_settings.editor",
                        Outcome.PENDING,
                        f"EDITOR and VISUAL are {command!r}, but {program} is not installed",
                        reason=Reason.NOT_INSTALLED,
                    )
                )
        return result

    def capture(self, ctx: Context, persona: Persona) -> list[Captured]:
        out: list[Captured] = []
        for path, parse in (
            (PROFILE, lambda t: parse_sh_assignments(t, (PATH_BEGIN, PATH_END))),
            (ENVIRONMENT_D, parse_envd),
        ):
            record = ctx.managed.get(path)
            found = edited(ctx, path)
            if record is None or record.handler != self.name or found is None:
                continue
            text = text_of(found[1], path)
            if text is None:
                continue
            written = dict(record.meta.get("vars") or {})
            venv = record.meta.get("venv")
            for name, value in parse(text).items():
                if written.get(name) == value:
                    continue
                if name == "PATH" and path == ENVIRONMENT_D:
                    value = _persona_path(value, venv if isinstance(venv, str) else None)
                    if value == "${PATH}":
                        continue
                out.append(Captured(f"environment_variables.{name}", value, path))
        return out
