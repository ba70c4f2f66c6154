"""Local podman images for sandboxes, built from mmdebstrap roots (no registry needed).

A base image (``mien-base:<recipe hash>``) is the base root of a :class:`Recipe` imported
with ``podman import``; a persona image (``mien-persona:<layer hash>``) is the persona
layer over that root (see :mod:`mien.agent.sandbox.roots`). Both are named by the content
hash of how they were made, so building again reuses what exists. Used by the ``podman``
driver and by ``mien app image build|list``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mien.agent.sandbox import roots
from mien.agent.sandbox.base import Progress, SandboxError

BASE_REPO = "localhost/mien-base"
PERSONA_REPO = "localhost/mien-persona"
_TIMEOUT = 1800.0


@dataclass(frozen=True, slots=True)
class Image:
    name: str
    kind: str
    recipe: str
    size: int
    created: str


def missing() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (scripts/system-deps)"
    return None


def exists(ref: str) -> bool:
    done = subprocess.run(
        ["podman", "image", "exists", ref], capture_output=True, timeout=60, check=False
    )
    return done.returncode == 0


def _import(tree: Path, ref: str, labels: Mapping[str, str]) -> None:
    """``tar`` the tree (numeric owners, xattrs kept) into ``podman import``."""
    changes: list[str] = []
    for key, value in labels.items():
        changes += ["--change", f"LABEL {key}={json.dumps(value)}"]
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "--xattrs", "-C", str(tree), "-cf", "-", "."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        done = subprocess.run(
            ["podman", "import", *changes, "-", ref],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    finally:
        if tar.stdout:
            tar.stdout.close()
        tar.wait(timeout=60)
    if tar.returncode != 0 or done.returncode != 0:
        err = (tar.stderr.read().decode(errors="replace") if tar.stderr else "") + done.stderr
        raise SandboxError(f"podman import {ref}: {err.strip()[-1500:]}")


def build_base(
    recipe: roots.Recipe, progress: Progress | None = None, cache: Path | None = None
) -> str:
    """The base image for ``recipe`` (built and imported on first use); its reference."""
    ref = f"{BASE_REPO}:{recipe.key()}"
    if exists(ref):
        if progress:
            progress(f"{ref} is already built")
        return ref
    root = roots.base_root(recipe, progress, cache)
    if progress:
        progress(f"importing {root} as {ref}")
    labels = {"mien.kind": "base", "mien.recipe": json.dumps(roots.recipe_data(recipe))}
    _import(root, ref, labels)
    return ref


def persona_image(
    recipe: roots.Recipe,
    document: Mapping[str, Any],
    user: str,
    progress: Progress | None = None,
    cache: Path | None = None,
) -> str:
    """The image with ``document`` applied over the base root (cached by content hash)."""
    base = roots.base_root(recipe, progress, cache)
    ref = f"{PERSONA_REPO}:{roots.layer_key(base, document, user)}"
    if exists(ref):
        return ref
    layer = roots.persona_layer(base, document, progress, cache, user)
    if progress:
        progress(f"importing persona {document.get('name', '')} as {ref}")
    labels = {"mien.kind": "persona", "mien.persona": str(document.get("name", ""))}
    with (
        tempfile.TemporaryDirectory(prefix="mien-image-") as tmp,
        roots.overlay([layer, base], Path(tmp) / "merged", None, None) as merged,
    ):
        _import(merged, ref, labels)
    return ref


def list_images() -> list[Image]:
    """The images mien built on this host, newest first."""
    done = subprocess.run(
        ["podman", "images", "--format", "json", "--filter", "label=mien.kind"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise SandboxError(f"podman images: {done.stderr.strip()}")
    found = []
    for item in json.loads(done.stdout or "[]"):
        labels = item.get("Labels") or {}
        for name in item.get("Names") or []:
            found.append(
                Image(
                    name=name,
                    kind=str(labels.get("mien.kind", "")),
                    recipe=str(labels.get("mien.recipe") or labels.get("mien.persona") or ""),
                    size=int(item.get("Size") or 0),
                    created=str(item.get("CreatedAt") or item.get("Created") or ""),
                )
            )
    return found
