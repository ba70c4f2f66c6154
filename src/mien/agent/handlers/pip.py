"""``required_applications`` with ``manager: pip`` → a virtualenv per persona.

The persona's Python packages live in ``/opt/mien/venvs/<persona>`` (inside the root
when it is not ``/``), made with the stdlib ``venv`` from the Python running mien — or,
in a root with its own ``/usr/bin/python3`` (a sandbox's), from that one through chroot,
so the venv works inside; the environment handler puts its ``bin`` on PATH after the
system's directories. A marker
file in the venv records the requirement set it was built from, so ``plan`` decides
"nothing to do" by reading one small file — pip never runs when nothing changed.

A change builds a complete new venv in a sibling directory (``pip install`` with the
persona's specs, honouring ``PIP_INDEX_URL``/``PIP_FIND_LINKS``/``PIP_NO_INDEX`` from the
agent's environment and the persona's ``environment_variables``), then swaps it in by
rename; the old one is kept as a backup until the apply commits (``finish``), so
``revert`` swaps back. A venv of a persona no longer active is removed the same way.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from mien.agent.handlers.base import (
    BaseHandler,
    Context,
    HandlerError,
    HandlerPlan,
    Note,
    Operation,
)
from mien.agent.handlers.programs import child_env, run_in_root
from mien.agent.handlers.support import VENVS_DIR, remove_tree, stale_persona_dirs, text_of
from mien.protocol.outcomes import Outcome
from mien.spec.models import Package, Persona

SETTING = "required_applications"
MARKER = "mien-venv.json"
ROOT_PYTHON = "/usr/bin/python3"


def pip_spec(pkg: Package) -> str:
    """A pip requirement: ``pandas``, ``pandas>=2.2``, ``pandas==2.2.1``."""
    version = (pkg.version or "").strip()
    if version in ("", "latest"):
        return pkg.name
    if version[0] in "<>=!~":
        return f"{pkg.name}{version}"
    return f"{pkg.name}=={version}"


def python_version() -> str:
    return ".".join(str(n) for n in sys.version_info[:3])


def base_python() -> str:
    """The interpreter new venvs are made from (not mien's own venv, if it runs in one)."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


def marker_matches(text: str | None, specs: list[str]) -> bool:
    if not text:
        return False
    try:
        marker = json.loads(text)
    except ValueError:
        return False
    return bool(marker.get("specs") == specs and marker.get("python") == python_version())


def _pip_env(ctx_env: Mapping[str, str], persona_pip: Mapping[str, str]) -> dict[str, str]:
    extra = {k: v for k, v in ctx_env.items() if k.startswith("PIP_")}
    extra.update(persona_pip)
    extra["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return child_env(ctx_env, None, extra)


def relocate(venv: Path, old: str, new: str) -> None:
    """Rewrite the paths a venv holds of where it was built (script shebangs, activate
    scripts, pyvenv.cfg) to where it will live."""
    candidates = [venv / "pyvenv.cfg", *(venv / "bin").iterdir()]
    for path in candidates:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old.encode() in data:
            mode = path.stat().st_mode
            path.write_bytes(data.replace(old.encode(), new.encode()))
            os.chmod(path, mode)


class PipHandler(BaseHandler):
    name: ClassVar[str] = "packages_pip"
    settings: ClassVar[tuple[str, ...]] = (SETTING,)
    order: ClassVar[int] = 20

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        result = HandlerPlan()
        specs = sorted({pip_spec(p) for p in persona.required_applications if p.manager == "pip"})
        venv = f"{VENVS_DIR}/{ctx.persona_name}"
        keep = ctx.persona_name if specs else None
        for name in stale_persona_dirs(ctx, VENVS_DIR, MARKER, keep):
            machine = f"{VENVS_DIR}/{name}"
            result.operations.append(
                Operation(
                    self.name,
                    f"pip:remove:{name}",
                    f"remove the virtualenv {machine} (persona no longer active)",
                    {"action": "remove", "venv": machine},
                )
            )
        if not specs:
            return result
        marker = text_of(ctx.read(f"{venv}/{MARKER}"), f"{venv}/{MARKER}")
        if marker_matches(marker, specs) and ctx.exists(f"{venv}/bin/python"):
            result.notes.append(
                Note(SETTING, Outcome.APPLIED, f"pip: {', '.join(specs)} in {venv}")
            )
            return result
        if ctx.exists(venv) and marker is None:
            raise HandlerError(
                f"{venv} exists and was not made by mien: move it away so mien can keep the "
                "persona's pip packages there"
            )
        missing_parents = []
        parent = Path(VENVS_DIR)
        while not ctx.exists(str(parent)) and str(parent) != "/":
            missing_parents.append(str(parent))
            parent = parent.parent
        persona_pip = {
            k: v for k, v in persona.environment_variables.items() if k.startswith("PIP_")
        }
        result.operations.append(
            Operation(
                self.name,
                f"pip:build:{ctx.persona_name}",
                f"build {venv} with {', '.join(specs)}",
                {
                    "action": "build",
                    "venv": venv,
                    "specs": specs,
                    "python": base_python(),
                    "existed": ctx.exists(venv),
                    "created_dirs": missing_parents,
                    "pip_env": persona_pip,
                },
            )
        )
        result.notes.append(
            Note(SETTING, Outcome.APPLIED, f"pip: {', '.join(specs)} into {venv} (on PATH, last)")
        )
        return result

    # --- operations --------------------------------------------------------------------

    @staticmethod
    def _paths(ctx: Context, data: Mapping[str, Any]) -> tuple[Path, Path, Path]:
        host = ctx.host_path(str(data["venv"]))
        return host, host.with_name(f".{host.name}.new"), host.with_name(f".{host.name}.old")

    def perform(self, ctx: Context, data: Mapping[str, Any]) -> None:
        host, staging, backup = self._paths(ctx, data)
        remove_tree(backup)  # an earlier apply's backup that was never finished
        if data["action"] == "remove":
            if host.exists():
                os.rename(host, backup)
            return
        remove_tree(staging)
        host.parent.mkdir(parents=True, exist_ok=True)
        python = str(data["python"])
        here, built = Path("/"), staging
        root_python = ctx.host_path(ROOT_PYTHON)
        if ctx.root != here and (root_python.is_symlink() or root_python.is_file()):
            # A system root of its own (a sandbox's): its venv must run on its Python.
            here, python = ctx.root, ROOT_PYTHON
            built = Path(str(data["venv"])).with_name(staging.name)
        run_in_root(
            here,
            [python, "-m", "venv", str(built)],
            env=child_env(ctx.env, None),
            timeout=300,
            what=f"python -m venv {data['venv']}",
        )
        specs = [str(s) for s in data["specs"]]
        run_in_root(
            here,
            [str(built / "bin" / "python"), "-m", "pip", "install", "--no-input", *specs],
            env=_pip_env(ctx.env, dict(data.get("pip_env", {}))),
            timeout=1800,
            what=f"pip install {' '.join(specs)}",
        )
        marker = {"persona": host.name, "specs": specs, "python": python_version()}
        (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        relocate(staging, str(built), str(data["venv"]))
        if host.exists():
            os.rename(host, backup)
        os.rename(staging, host)

    def revert(self, ctx: Context, data: Mapping[str, Any]) -> None:
        host, staging, backup = self._paths(ctx, data)
        remove_tree(staging)
        if backup.exists():
            remove_tree(host)
            os.rename(backup, host)
        elif data["action"] == "build" and not data.get("existed"):
            remove_tree(host)  # it did not exist at plan time: this operation made it
        for directory in data.get("created_dirs", []):
            path = ctx.host_path(str(directory))
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()

    def finish(self, ctx: Context, data: Mapping[str, Any]) -> None:
        _, _, backup = self._paths(ctx, data)
        remove_tree(backup)
