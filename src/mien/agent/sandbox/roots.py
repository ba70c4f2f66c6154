"""The file trees sandboxes run on: a base Debian root and, on top, one layer per persona.

The base root is a minimal Debian built with ``mmdebstrap`` from a recipe (suite,
variant, mirror, extra packages) and cached under the recipe's content hash, so it is
built once per host. A persona layer is the base root with the persona applied by mien's
own engine (``Engine(root=...)``, as ``mien apply --root``): its apt, pip and npm packages
installed (npm packages bring the apt packages ``nodejs`` and ``npm`` with them), its configuration files, environment and scripts written, and the flat
``application_configuration`` entries written by the engine to the persona's env file
(``/etc/persona/application.env``, as on a machine; the drivers load it into every ``run``,
also under upper-case names). It is built on the
host side (apt and pip need the network, which the sandbox does not have) in an overlay's
upper directory over the base root, and cached under the hash of base + persona, so a
second lease of the same persona starts at once. A failed build leaves nothing.

Used by the ``local`` driver (which stacks base + layer as a read-only overlay under each
lease) and the ``podman`` driver / ``mien app image`` (which import the trees as images).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mien.agent.sandbox.base import Progress, SandboxError, split_app_config
from mien.spec.models import APPLICATION_ENV_KEY, APPLICATION_ENV_PATH

# What a layer holds changed (where the flat settings go): part of its cache key.
_LAYER_LAYOUT = 2
# A copy of the user's home as the persona left it, for drivers whose home is a fresh tmpfs.
HOME_SKEL = "/var/lib/mien/sandbox-home"
BUILD_CA = "/etc/mien/build-ca.pem"
SANDBOX_USER = "app"
SANDBOX_UID = 1000
DEFAULT_CACHE = Path("/var/cache/mien/sandbox")
_BUILD_TIMEOUT = 1800.0
_ENV_NAME = re.compile(r"[^A-Za-z0-9_]")
NODE_PACKAGES = ("nodejs", "npm")  # what a layer with npm packages gets from apt first


@dataclass(frozen=True, slots=True)
class Recipe:
    """How a base root is built; its :meth:`key` names the cached result."""

    suite: str = "bookworm"
    variant: str = "minbase"
    mirror: str = "http://deb.debian.org/debian"
    packages: tuple[str, ...] = field(default=())

    def key(self) -> str:
        data = {
            "suite": self.suite,
            "variant": self.variant,
            "mirror": self.mirror,
            "packages": sorted(set(self.packages)),
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def parse_base(cls, base: str, packages: tuple[str, ...] = ()) -> Recipe:
        """``debian:bookworm`` (or just ``bookworm``) → a recipe."""
        dist, _, suite = base.rpartition(":")
        if dist not in ("", "debian") or not re.fullmatch(r"[a-z][a-z0-9-]*", suite):
            raise SandboxError(f"--base {base!r}: use debian:SUITE, e.g. debian:bookworm")
        for name in packages:
            if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", name):
                raise SandboxError(f"--packages: {name!r} is not a Debian package name")
        return cls(suite=suite, packages=tuple(sorted(set(packages))))


def cache_dir() -> Path:
    return Path(os.environ.get("MIEN_SANDBOX_CACHE") or DEFAULT_CACHE)


def _run(argv: list[str], what: str, timeout: float = _BUILD_TIMEOUT) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise SandboxError(f"{what}: {argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise SandboxError(f"{what}: {argv[0]} took more than {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise SandboxError(f"{what}: {tail or f'exit status {done.returncode}'}")
    return done.stdout


def base_root(recipe: Recipe, progress: Progress | None = None, cache: Path | None = None) -> Path:
    """The base root for ``recipe``, built with mmdebstrap on first use."""
    where = (cache or cache_dir()) / f"base-{recipe.key()}"
    if (where / "root" / "usr").is_dir():
        return where / "root"
    with _building(where):
        if (where / "root" / "usr").is_dir():  # built by another process meanwhile
            return where / "root"
        return _build_base(recipe, where, progress)


def _build_base(recipe: Recipe, where: Path, progress: Progress | None) -> Path:
    if shutil.which("mmdebstrap") is None:
        raise SandboxError("building a base root needs mmdebstrap (scripts/system-deps)")
    partial = where.with_name(where.name + f".{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "root").mkdir(parents=True)
    if progress:
        progress(f"building the Debian {recipe.suite} base root with mmdebstrap")
    argv = ["mmdebstrap", f"--variant={recipe.variant}", "--quiet"]
    if recipe.packages:
        argv.append("--include=" + ",".join(recipe.packages))
    try:
        _run([*argv, recipe.suite, str(partial / "root"), recipe.mirror], "mmdebstrap")
        (partial / "recipe.json").write_text(json.dumps(recipe_data(recipe)))
        partial.rename(where)  # only a complete build is ever found in the cache
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return where / "root"


def recipe_data(recipe: Recipe) -> dict[str, Any]:
    return {
        "suite": recipe.suite,
        "variant": recipe.variant,
        "mirror": recipe.mirror,
        "packages": list(recipe.packages),
        "key": recipe.key(),
    }


def layer_key(base: Path, document: Mapping[str, Any], user: str = SANDBOX_USER) -> str:
    """Base + what the persona puts in the root (not its limits or access controls)."""
    inside = {
        k: v
        for k, v in document.items()
        if k not in ("resource_requirements", "access_controls", "extends")
    }
    text = json.dumps(
        {"base": str(base), "user": user, "persona": inside, "layout": _LAYER_LAYOUT},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _building(where: Path) -> Iterator[None]:
    """One build of ``where`` at a time, across processes and threads."""
    where.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{where}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def overlay(
    lower: list[Path], mountpoint: Path, upper: Path | None, work: Path | None
) -> Iterator[Path]:
    """Mount an overlay (read-only without ``upper``) for the duration of the block."""
    mount(lower, mountpoint, upper, work)
    try:
        yield mountpoint
    finally:
        umount(mountpoint)


def mount(lower: list[Path], mountpoint: Path, upper: Path | None, work: Path | None) -> None:
    mountpoint.mkdir(parents=True, exist_ok=True)
    opts = "lowerdir=" + ":".join(str(p) for p in lower)
    if upper is not None and work is not None:
        opts += f",upperdir={upper},workdir={work}"
    _run(["mount", "-t", "overlay", "overlay", "-o", opts, str(mountpoint)], "overlay mount", 30)


def umount(path: Path) -> None:
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False, timeout=30)


def add_user(root: Path, name: str = SANDBOX_USER, uid: int = SANDBOX_UID) -> None:
    """The sandbox user in the root's passwd/group/shadow (no useradd needed), with a home."""
    etc = root / "etc"
    for file, line in (
        ("passwd", f"{name}:x:{uid}:{uid}::/home/{name}:/bin/bash"),
        ("group", f"{name}:x:{uid}:"),
        ("shadow", f"{name}:!:19000:0:99999:7:::"),
    ):
        path = etc / file
        text = path.read_text() if path.is_file() else ""
        if not any(entry.split(":", 1)[0] == name for entry in text.splitlines()):
            path.write_text(text + ("" if text.endswith("\n") or not text else "\n") + line + "\n")
    home = root / "home" / name
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, uid, uid)
    home.chmod(0o750)


def app_env_values(flat: Mapping[str, str]) -> dict[str, str]:
    """The flat settings as the env file's values: each under its own name and, when
    different, its upper-case name (``database_url`` → also ``DATABASE_URL``)."""
    values: dict[str, str] = {}
    for key, value in sorted(flat.items()):
        name = _ENV_NAME.sub("_", key)
        if name[:1].isdigit():
            name = "_" + name
        values[name] = value
        values.setdefault(name.upper(), value)
    return values


def with_node(apps: Any) -> Any:
    """``required_applications`` plus the apt packages ``nodejs`` and ``npm`` when it has
    npm packages (the layer's npm installs them; the base root has no Node)."""
    if not isinstance(apps, list) or not any(
        isinstance(a, Mapping) and a.get("manager") == "npm" for a in apps
    ):
        return apps
    present = {
        a.get("name") for a in apps if isinstance(a, Mapping) and a.get("manager", "apt") == "apt"
    }
    extra = [{"name": n, "manager": "apt"} for n in NODE_PACKAGES if n not in present]
    return extra + list(apps)


def persona_layer(
    base: Path,
    document: Mapping[str, Any],
    progress: Progress | None = None,
    cache: Path | None = None,
    user: str = SANDBOX_USER,
) -> Path:
    """The upper directory holding ``document`` applied over ``base`` for ``user`` (cached
    by hash)."""
    where = (cache or cache_dir()) / f"layer-{layer_key(base, document, user)}"
    if (where / "done").is_file():
        return where / "upper"
    with _building(where):
        if (where / "done").is_file():  # built by another process meanwhile
            return where / "upper"
        return _build_layer(base, document, where, user, progress)


def _build_layer(
    base: Path, document: Mapping[str, Any], where: Path, user: str, progress: Progress | None
) -> Path:
    partial = where.with_name(where.name + f".{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    for sub in ("upper", "work", "merged"):
        (partial / sub).mkdir(parents=True)
    name = str(document.get("name") or "app")
    try:
        with overlay([base], partial / "merged", partial / "upper", partial / "work") as root:
            _apply(root, document, name, user, progress)
        shutil.rmtree(partial / "work", ignore_errors=True)
        (partial / "merged").rmdir()
        (partial / "done").write_text(name + "\n")
        shutil.rmtree(where, ignore_errors=True)  # an unfinished build (never in use)
        partial.rename(where)
    except BaseException:
        umount(partial / "merged")
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return where / "upper"


def _apply(
    root: Path, document: Mapping[str, Any], name: str, user: str, progress: Progress | None
) -> None:
    from mien.agent.engine import Engine

    add_user(root, user)
    resolv = root / "etc" / "resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    if Path("/etc/resolv.conf").is_file():  # apt and pip inside resolve the archive's name
        shutil.copyfile("/etc/resolv.conf", resolv)
    doc, flat = split_app_config(document)
    if flat:  # the engine writes them, to the path it uses on a machine
        config = dict(doc.get("application_configuration") or {})
        config[APPLICATION_ENV_KEY] = {
            "path": APPLICATION_ENV_PATH,
            "format": "env",
            "values": app_env_values(flat),
        }
        doc["application_configuration"] = config
    doc.pop("extends", None)
    doc.setdefault("name", name)
    doc["required_applications"] = with_node(doc.get("required_applications"))
    if progress:
        progress(f"applying persona {name} inside the sandbox root")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    # pip inside honours the agent's pip settings; a CA bundle it names is a host file,
    # so it is lent to the root for the build only.
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_") and k != "PIP_CERT"})
    env.update({k: v for k, v in os.environ.items() if k.lower().startswith("npm_config_")})
    lent = root / BUILD_CA.lstrip("/")
    for variable in ("PIP_CERT", "NODE_EXTRA_CA_CERTS"):  # npm's too
        cert = os.environ.get(variable)
        if cert and Path(cert).is_file():
            lent.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cert, lent)
            env[variable] = BUILD_CA
    try:
        Engine(root, user=user, env=env).apply_data(doc, label=f"sandbox:{name}")
    except Exception as exc:  # the engine's own message (apt's, pip's) is the reason
        raise SandboxError(f"applying persona {name}: {exc}") from None
    finally:
        lent.unlink(missing_ok=True)
    skel = root / HOME_SKEL.lstrip("/")
    shutil.rmtree(skel, ignore_errors=True)
    shutil.copytree(root / "home" / user, skel, symlinks=True)
