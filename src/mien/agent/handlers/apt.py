"""``required_applications`` with ``manager: apt`` → Debian packages, with apt-get.

``plan`` reads ``/var/lib/dpkg/status`` directly (no process) and returns an operation
installing what is missing (``version: latest`` or none → the newest; another version →
``name=version``, which apt matches against the Debian version). Packages mien installed
for an earlier persona and no longer wanted are removed; packages that were on the
machine before mien are never removed. What mien installed is kept in
``/var/lib/mien/records/apt-packages.json`` (a managed file, so it follows rollbacks),
with the packages that were there before mien's first install: when mien removes what it
installed, the dependencies apt brought in with it (installed since, and no longer needed
by anything, as ``apt-get autoremove`` decides) go too, and only those.

On ``/`` apt-get runs directly; on another root only when that root is a Debian system
(``var/lib/dpkg/status`` and ``usr/bin/apt-get``), through chroot. Undoing an install
purges exactly the packages that appeared since the plan's snapshot (dependencies
included); undoing a removal reinstalls the removed versions when the archive still has
them. npm packages are :mod:`mien.agent.handlers.npm`'s; other managers (snap, flatpak,
cargo) have no handler: a ``stored`` note says so, nothing claims them as installed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
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
from mien.agent.handlers.programs import child_env, run_in_root
from mien.agent.handlers.support import RECORDS_DIR, text_of
from mien.protocol.outcomes import Outcome, Reason
from mien.spec.models import Package, Persona

SETTING = "required_applications"
STATUS = "/var/lib/dpkg/status"
APT_GET = "/usr/bin/apt-get"
RECORD = f"{RECORDS_DIR}/apt-packages.json"
OTHER_MANAGERS = ("snap", "flatpak", "cargo")
_RANGE_CHARS = set("<>!~*^,")


def parse_status(text: str) -> tuple[dict[str, str], set[str]]:
    """Installed packages (name → version) and the virtual names they provide, from a dpkg
    status file."""
    installed: dict[str, str] = {}
    provided: set[str] = set()
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        last = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t"):
                if last:
                    fields[last] += "\n" + line.strip()
                continue
            key, sep, value = line.partition(":")
            if sep:
                last = key.strip()
                fields[last] = value.strip()
        status = fields.get("Status", "").split()
        name = fields.get("Package")
        if name and len(status) == 3 and status[2] == "installed":
            installed[name] = fields.get("Version", "")
            for item in fields.get("Provides", "").split(","):
                virtual = item.strip().split(" ", 1)[0]
                if virtual:
                    provided.add(virtual)
    return installed, provided


def upstream(version: str) -> str:
    """``1:2.3-4`` → ``2.3`` (epoch and Debian revision dropped)."""
    version = version.split(":", 1)[1] if ":" in version else version
    return version.rsplit("-", 1)[0] if "-" in version else version


def base_name(name: str) -> str:
    return name.split(":", 1)[0]


def wants_version(pkg: Package) -> str | None:
    return None if pkg.version in (None, "", "latest") else pkg.version


def satisfied(pkg: Package, installed: Mapping[str, str], provided: set[str]) -> bool:
    name = base_name(pkg.name)
    version = wants_version(pkg)
    if version is None:
        return name in installed or name in provided
    have = installed.get(name)
    return have is not None and version in (have, upstream(have))


def apt_spec(pkg: Package) -> str:
    version = wants_version(pkg)
    return pkg.name if version is None else f"{pkg.name}={version}"


def apt_env(ctx_env: Mapping[str, str]) -> dict[str, str]:
    extra = {"DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}
    if "APT_CONFIG" in ctx_env:  # apt's own way to point at other sources (tests, mirrors)
        extra["APT_CONFIG"] = ctx_env["APT_CONFIG"]
    return child_env(ctx_env, None, extra)


def _apt(ctx: Context, *args: str, timeout: float = 1800) -> str:
    return run_in_root(
        ctx.root,
        [
            "apt-get",
            "-q",
            "-y",
            "-o",
            "DPkg::Lock::Timeout=120",
            # mien writes its files before packages install: a configuration file already
            # there (the persona's) is kept, never a prompt on a terminal nobody watches.
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            *args,
        ],
        env=apt_env(ctx.env),
        timeout=timeout,
        what=f"apt-get {args[0]}",
    ).stdout


def autoremovable(simulation: str) -> list[str]:
    """The packages ``apt-get -s autoremove`` would remove (its ``Remv NAME ...`` lines)."""
    return [line.split()[1] for line in simulation.splitlines() if line.startswith("Remv ")]


class AptHandler(BaseHandler):
    name: ClassVar[str] = "packages_apt"
    settings: ClassVar[tuple[str, ...]] = (SETTING,)
    order: ClassVar[int] = 10

    def _check_root(self, ctx: Context) -> None:
        if ctx.host_path(STATUS).is_file() and ctx.host_path(APT_GET).is_file():
            return
        where = "this machine" if ctx.root == Path("/") else str(ctx.root)
        raise HandlerError(
            f"apt packages need a Debian or Ubuntu system, and {where} has no "
            f"{STATUS} and {APT_GET}: remove the apt entries of required_applications "
            "or apply to a Debian root"
        )

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        result = HandlerPlan()
        for manager in OTHER_MANAGERS:
            others = [p.name for p in persona.required_applications if p.manager == manager]
            if others:
                result.notes.append(
                    Note(
                        SETTING,
                        Outcome.STORED,
                        f"no handler for {manager} packages: {', '.join(others)} not installed",
                        reason=Reason.UNSUPPORTED,
                    )
                )
        wanted: list[Package] = []
        for pkg in persona.required_applications:
            if pkg.manager != "apt":
                continue
            version = wants_version(pkg)
            if version is not None and (_RANGE_CHARS & set(version) or " " in version):
                result.notes.append(
                    Note(
                        SETTING,
                        Outcome.FAILED,
                        f"{pkg.name} {version}: apt installs one exact version (or latest), "
                        "not a range: not installed",
                    )
                )
                continue
            wanted.append(pkg)
        record = ctx.managed.get(RECORD)
        before = [str(n) for n in (record.meta.get("installed", []) if record else [])]
        # What was on the machine before mien's first install, carried from apply to apply.
        earlier = record.meta.get("before") if record else None
        if not wanted and not before:
            return result
        if not wanted and not (ctx.host_path(STATUS).is_file()):
            return result  # nothing to install, nothing we could remove
        self._check_root(ctx)
        installed, provided = parse_status(text_of(ctx.read(STATUS), STATUS) or "")
        snapshot = sorted(str(n) for n in earlier) if earlier is not None else sorted(installed)
        names = {base_name(p.name) for p in wanted}
        remove = [n for n in before if n not in names and n in installed]
        if remove:
            # Candidates only: perform removes those apt's autoremove then finds unneeded
            # (a user's own installs are marked manual, and never are).
            since = sorted(set(installed) - set(snapshot) - set(remove) - names)
            result.operations.append(
                Operation(
                    self.name,
                    "apt:remove",
                    f"apt-get remove {' '.join(remove)} (installed by mien, no longer wanted)"
                    + (", and what apt brought in with it" if since else ""),
                    {
                        "remove": remove,
                        "brought_in": since,
                        "versions": {n: installed[n] for n in (*remove, *since)},
                    },
                )
            )
        missing = [p for p in wanted if not satisfied(p, installed, provided)]
        if missing:
            specs = [apt_spec(p) for p in missing]
            result.operations.append(
                Operation(
                    self.name,
                    "apt:install",
                    f"apt-get install {' '.join(specs)}",
                    {
                        "install": specs,
                        "before": sorted(installed),
                        "versions_before": {
                            base_name(p.name): installed[base_name(p.name)]
                            for p in missing
                            if base_name(p.name) in installed
                        },
                    },
                )
            )
        kept = sorted(
            {n for n in before if n in names and n in installed}
            | {base_name(p.name) for p in missing if base_name(p.name) not in installed}
        )
        if kept:
            doc = {
                "managed_by": "mien",
                "persona": ctx.persona_name,
                "installed_by_mien": kept,
                "present_before_mien": snapshot,
            }
            result.files.append(
                FileSpec(
                    RECORD,
                    FileState((json.dumps(doc, indent=2) + "\n").encode(), 0o644, 0, 0),
                    {"installed": kept, "before": snapshot},
                    f"apt packages mien installed: {len(kept)}",
                    SETTING,
                )
            )
        if wanted:
            result.notes.append(
                Note(
                    SETTING,
                    Outcome.APPLIED,
                    f"apt: {len(wanted) - len(missing)} package(s) present, {len(missing)} to install",
                )
            )
        return result

    # --- operations --------------------------------------------------------------------

    def perform(self, ctx: Context, data: Mapping[str, Any]) -> None:
        if "install" in data:
            _apt(ctx, "update", timeout=900)
            _apt(ctx, "install", "--allow-downgrades", *[str(s) for s in data["install"]])
        else:
            _apt(ctx, "remove", *[str(n) for n in data["remove"]])
            brought_in = {str(n) for n in data.get("brought_in", [])}
            if brought_in:
                unneeded = [
                    n for n in autoremovable(_apt(ctx, "-s", "autoremove")) if n in brought_in
                ]
                if unneeded:
                    _apt(ctx, "remove", *unneeded)

    def revert(self, ctx: Context, data: Mapping[str, Any]) -> None:
        installed, _ = parse_status(text_of(ctx.read(STATUS), STATUS) or "")
        if "install" in data:
            added = sorted(set(installed) - {str(n) for n in data["before"]})
            if added:
                _apt(ctx, "purge", *added)
            back = [
                f"{name}={version}"
                for name, version in dict(data.get("versions_before", {})).items()
                if installed.get(str(name)) not in (None, version)
            ]
            if back:
                _apt(ctx, "install", "--allow-downgrades", *back)
        else:
            gone = [
                f"{name}={version}"
                for name, version in dict(data["versions"]).items()
                if str(name) not in installed
            ]
            if gone:
                _apt(ctx, "install", "--allow-downgrades", *gone)
