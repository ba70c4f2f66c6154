"""``mien app image build|list``: the local podman base images sandbox hosts run leases on.

No image registry is reachable from a sandbox host, so base images are built here: a
minimal Debian root made with ``mmdebstrap`` and imported with ``podman import``, named
``localhost/mien-base:<hash of the recipe>`` so building the same recipe again reuses it.
Exposed as :data:`images_app`, attached under ``mien app`` as ``image``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mien.cli.common import OutputFormat, fail, info, paragraphs, print_json, table
from mien.cli.fleet import common as cc

images_app = typer.Typer(
    name="image",
    no_args_is_help=True,
    help=paragraphs("""
        Base images for the podman sandbox driver, built locally (needs root, mmdebstrap
        and podman).

          mien app image build --base debian:bookworm --packages jq,curl
          mien app image list
        """),
)


@images_app.command("build")
def build(
    base: Annotated[
        str, typer.Option("--base", help="The distribution and suite: debian:SUITE.")
    ] = "debian:bookworm",
    packages: Annotated[
        list[str] | None,
        typer.Option("--packages", help="Debian packages to include (repeat or comma-separate)."),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache", help="Where built roots are kept (default /var/cache/mien/sandbox)."
        ),
    ] = None,
    output: cc.OutputOpt = OutputFormat.table,
) -> None:
    """Build (or reuse) the base image for a recipe and print its name."""
    from mien.agent.sandbox import images, roots
    from mien.agent.sandbox.base import SandboxError

    names = tuple(p.strip() for item in packages or [] for p in item.split(",") if p.strip())
    try:
        recipe = roots.Recipe.parse_base(base, names)
        missing = images.missing()
        if missing:
            fail(missing)
        ref = images.build_base(recipe, info, cache)
    except SandboxError as exc:
        fail(str(exc))
    if output is OutputFormat.json:
        print_json({"image": ref, "recipe": roots.recipe_data(recipe)})
    else:
        print(ref)


@images_app.command("list")
def list_(output: cc.OutputOpt = OutputFormat.table) -> None:
    """The images mien built on this host."""
    from mien.agent.sandbox import images
    from mien.agent.sandbox.base import SandboxError

    missing = images.missing()
    if missing:
        fail(missing)
    try:
        found = images.list_images()
    except SandboxError as exc:
        fail(str(exc))
    if output is OutputFormat.json:
        print_json([{"name": i.name, "kind": i.kind, "recipe": i.recipe, "size": i.size,
                     "created": i.created} for i in found])  # fmt: skip
        return
    table(
        ["name", "kind", "size", "created", "recipe"],
        [[i.name, i.kind, f"{i.size / 1e6:.0f} MB", i.created, i.recipe] for i in found],
    )
