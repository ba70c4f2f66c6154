"""Fixtures shared by every tier (helpers live in :mod:`tests.support`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import Run, make_machine, run_mien


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    """A fresh machine root with users alice and bob."""
    return make_machine(tmp_path / "root")


@pytest.fixture
def mien() -> Callable[..., Run]:
    """The real ``mien`` command, run as a subprocess."""
    return run_mien
