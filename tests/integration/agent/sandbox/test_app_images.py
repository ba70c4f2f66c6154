"""``mien app image build|list``: a base image built from the cached mmdebstrap root,
imported into podman under its recipe hash, reused when built again, listed; a bad
``--base`` is refused naming the option."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mien.cli.common import CommandFailed
from mien.cli.fleet.apps import app_app
from tests.integration.agent.sandbox.conftest import CACHE, RECIPE

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _cli() -> typer.Typer:
    return app_app  # `mien app`, with `image` attached as the command line has it


def test_a_bad_base_is_refused_naming_the_option() -> None:
    result = CliRunner().invoke(_cli(), ["image", "build", "--base", "ubuntu:jammy"])
    assert isinstance(result.exception, CommandFailed)
    assert "--base 'ubuntu:jammy'" in str(result.exception)


def test_build_imports_once_and_list_shows_it(base_root: Path) -> None:
    if shutil.which("podman") is None:
        pytest.skip("needs podman (scripts/system-deps installs it)")
    runner = CliRunner()
    args = ["image", "build", "--base", "debian:bookworm", "--cache", str(CACHE), "-o", "json"]
    first = runner.invoke(_cli(), args)
    assert first.exit_code == 0, first.output
    built = json.loads(first.stdout)
    assert built["image"] == f"localhost/mien-base:{RECIPE.key()}"
    started = time.monotonic()
    again = runner.invoke(_cli(), args)
    assert again.exit_code == 0 and json.loads(again.stdout)["image"] == built["image"]
    assert time.monotonic() - started < 10  # reused, not rebuilt
    listed = runner.invoke(_cli(), ["image", "list", "-o", "json"])
    assert listed.exit_code == 0, listed.output
    images = {i["name"]: i for i in json.loads(listed.stdout)}
    assert images[built["image"]]["kind"] == "base"
    assert RECIPE.key() in images[built["image"]]["recipe"]
