"""``required_applications`` with ``manager: npm`` → a global npm prefix per persona.

The persona's Node packages live in ``/opt/mien/npm/<persona>`` (inside the root when it is
not ``/``), installed with ``npm install --global --prefix``; the environment handler puts
its ``bin`` on PATH after the system's directories. npm is the root's own
(``/usr/bin/npm`` through chroot, so the packages are built for the Node that runs them:
a sandbox's) or, on a root without one, the ``npm`` on this machine's PATH; none at all is
an error saying to install ``nodejs`` and ``npm``. A marker file in the prefix records the
specs it was built from, so ``plan`` decides "nothing to do" by reading one small file.

A change builds a complete new prefix in a sibling directory (npm honours the agent's
``npm_config_*``/``NPM_CONFIG_*`` settings, e.g. a registry mirror, and
``NODE_EXTRA_CA_CERTS``), then swaps it in by rename — the links in its ``bin`` are
relative, so it works where it lands; the old one is kept as a backup until the apply
commits (``finish``), so ``revert`` swaps back. A prefix of a persona no longer active is
removed the same way.
"""

from __future__ import annotations

import json
import shutil
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
from mien.agent.handlers.support import NPM_DIR, remove_tree, stale_persona_dirs, text_of
from mien.protocol.outcomes import Outcome
from mien.spec.models import Package, Persona

SETTING = "required_applications"
MARKER = "mien-npm.json"
ROOT_NPM = "/usr/bin/npm"
_PASSED = ("NODE_EXTRA_CA_CERTS",)


def npm_spec(pkg: Package) -> str:
    """An npm package spec: ``semver``, ``semver@7.6.0``, ``semver@>=7``."""
    version = (pkg.version or "").strip()
    if version in ("", "latest"):
        return pkg.name
    return f"{pkg.name}@{version}"


def marker_matches(text: str | None, specs: list[str]) -> bool:
    if not text:
        return False
    try:
        marker = json.loads(text)
    except ValueError:
        return False
    return bool(isinstance(marker, dict) and marker.get("specs") == specs)


def npm_env(ctx_env: Mapping[str, str], cache: str) -> dict[str, str]:
    """npm's environment: the agent's npm settings, a cache of the build's own, no noise."""
    extra = {
        k: v for k, v in ctx_env.items() if k.lower().startswith("npm_config_") or k in _PASSED
    }
    extra.update(
        npm_config_cache=cache,
        npm_config_update_notifier="false",
        npm_config_fund="false",
        npm_config_audit="false",
    )
    return child_env(ctx_env, None, extra)


def _npm(ctx: Context) -> str:
    """``root`` (the root's own npm, run through chroot) or the path of this machine's."""
    if ctx.root != Path("/") and ctx.host_path(ROOT_NPM).exists():
        return "root"
    found = shutil.which("npm")
    if found is None:
        raise HandlerError(
            "required_applications: npm packages need npm: install the apt packages nodejs "
            "and npm (list them in required_applications too)"
        )
    return found


class NpmHandler(BaseHandler):
    name: ClassVar[str] = "packages_npm"
    settings: ClassVar[tuple[str, ...]] = (SETTING,)
    order: ClassVar[int] = 25

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        result = HandlerPlan()
        specs = sorted({npm_spec(p) for p in persona.required_applications if p.manager == "npm"})
        prefix = f"{NPM_DIR}/{ctx.persona_name}"
        keep = ctx.persona_name if specs else None
        for name in stale_persona_dirs(ctx, NPM_DIR, MARKER, keep):
            machine = f"{NPM_DIR}/{name}"
            result.operations.append(
                Operation(
                    self.name,
                    f"npm:remove:{name}",
                    f"remove the npm prefix {machine} (persona no longer active)",
                    {"action": "remove", "prefix": machine},
                )
            )
        if not specs:
            return result
        marker = text_of(ctx.read(f"{prefix}/{MARKER}"), f"{prefix}/{MARKER}")
        if marker_matches(marker, specs):
            result.notes.append(
                Note(SETTING, Outcome.APPLIED, f"npm: {', '.join(specs)} in {prefix}")
            )
            return result
        if ctx.exists(prefix) and marker is None:
            raise HandlerError(
                f"{prefix} exists and was not made by mien: move it away so mien can keep the "
                "persona's npm packages there"
            )
        apt_npm = any(p.manager == "apt" and p.name == "npm" for p in persona.required_applications)
        if not apt_npm:
            _npm(ctx)  # neither installed nor about to be: say so before anything changes
        missing_parents = []
        parent = Path(NPM_DIR)
        while not ctx.exists(str(parent)) and str(parent) != "/":
            missing_parents.append(str(parent))
            parent = parent.parent
        result.operations.append(
            Operation(
                self.name,
                f"npm:build:{ctx.persona_name}",
                f"install {', '.join(specs)} into {prefix} with npm",
                {
                    "action": "build",
                    "prefix": prefix,
                    "specs": specs,
                    "existed": ctx.exists(prefix),
                    "created_dirs": missing_parents,
                },
            )
        )
        result.notes.append(
            Note(SETTING, Outcome.APPLIED, f"npm: {', '.join(specs)} into {prefix} (on PATH, last)")
        )
        return result

    # --- operations --------------------------------------------------------------------

    @staticmethod
    def _paths(ctx: Context, data: Mapping[str, Any]) -> tuple[Path, Path, Path]:
        host = ctx.host_path(str(data["prefix"]))
        return host, host.with_name(f".{host.name}.new"), host.with_name(f".{host.name}.old")

    def perform(self, ctx: Context, data: Mapping[str, Any]) -> None:
        host, staging, backup = self._paths(ctx, data)
        remove_tree(backup)  # an earlier apply's backup that was never finished
        if data["action"] == "remove":
            if host.exists():
                host.rename(backup)
            return
        remove_tree(staging)
        staging.mkdir(parents=True)
        specs = [str(s) for s in data["specs"]]
        npm = _npm(ctx)  # now: the apt packages of this apply are installed
        if npm == "root":  # inside the root: paths as the root sees them
            here, npm = ctx.root, ROOT_NPM
            built = str(Path(str(data["prefix"])).with_name(staging.name))
        else:
            here, built = Path("/"), str(staging)
        run_in_root(
            here,
            [npm, "install", "--global", "--prefix", built, "--no-audit", "--no-fund", *specs],
            env=npm_env(ctx.env, f"{built}/.npm-cache"),
            timeout=1800,
            what=f"npm install {' '.join(specs)}",
        )
        remove_tree(staging / ".npm-cache")
        marker = {"persona": host.name, "specs": specs}
        (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if host.exists():
            host.rename(backup)
        staging.rename(host)

    def revert(self, ctx: Context, data: Mapping[str, Any]) -> None:
        host, staging, backup = self._paths(ctx, data)
        remove_tree(staging)
        if backup.exists():
            remove_tree(host)
            backup.rename(host)
        elif data["action"] == "build" and not data.get("existed"):
            remove_tree(host)  # it did not exist at plan time: this operation made it
        for directory in data.get("created_dirs", []):
            path = ctx.host_path(str(directory))
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()

    def finish(self, ctx: Context, data: Mapping[str, Any]) -> None:
        _, _, backup = self._paths(ctx, data)
        remove_tree(backup)
