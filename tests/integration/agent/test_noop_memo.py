"""The engine's remembered no-op: a long-running agent re-applying an unchanged persona is
answered without planning, and only while nothing the answer rested on changed.

Each test applies twice (the second apply finds nothing to change and is remembered), then
changes one thing — a managed file's content, mode, a symlink in its place, a user's
customization, another engine's apply — and checks that the next apply plans in full and puts the
machine right instead of answering from memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mien.agent.engine import Engine
from tests.support import make_machine

PERSONA = """\
name: quiet
environment_variables: {EDITOR: vim}
application_configuration:
  app:
    path: ~/.config/app/settings.json
    format: json
    values: {theme: dark, size: 12}
  motd: {path: /etc/motd, format: text, content: "hello\\n"}
"""


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    root = make_machine(tmp_path / "root")
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "quiet.yaml").write_text(PERSONA)
    engine = Engine(root, user="alice", personas=[personas], env={})
    assert engine.apply("quiet").applied
    assert not engine.apply("quiet").applied
    return engine


@contextmanager
def no_planning(engine: Engine) -> Iterator[None]:
    """Fail the test if the engine opens its state (that is, plans) meanwhile."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the engine planned although nothing changed")

    engine.session = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        del engine.session


def test_an_unchanged_persona_is_answered_from_memory(engine: Engine) -> None:
    with no_planning(engine):
        result = engine.apply("quiet")
    assert not result.applied and result.plan.persona == "quiet"


def test_a_document_from_the_server_is_answered_from_memory(engine: Engine) -> None:
    data = {"name": "served", "environment_variables": {"A": "1"}}
    assert engine.apply_data(data).applied
    assert not engine.apply_data(data).applied
    with no_planning(engine):
        assert not engine.apply_data(data, label="another label").applied
    # A different document is planned (and applied).
    assert engine.apply_data({**data, "environment_variables": {"A": "2"}}).applied


def test_an_edited_managed_file_is_planned(engine: Engine) -> None:
    motd = engine.root / "etc/motd"
    motd.write_text("hello\n")  # same bytes, new mtime and ctime: planned again, no change
    assert not engine.apply("quiet").applied
    # A user's edit of their own settings file is seen and kept as their customization.
    settings = engine.root / "home/alice/.config/app/settings.json"
    settings.write_text('{"theme": "light", "size": 12}\n')
    result = engine.apply("quiet")
    assert result.plan.drift
    assert result.plan.customizations.get("application_configuration.app.values.theme") == "light"


def test_a_changed_mode_is_put_right(engine: Engine) -> None:
    motd = engine.root / "etc/motd"
    mode = motd.stat().st_mode & 0o777
    motd.chmod(0o666)
    assert engine.apply("quiet").applied
    assert motd.stat().st_mode & 0o777 == mode


def test_a_symlink_planted_in_place_of_a_directory_is_noticed(engine: Engine) -> None:
    config = engine.root / "home/alice/.config/app"
    elsewhere = engine.root / "home/alice/elsewhere"
    config.rename(elsewhere)
    os.symlink(elsewhere, config)
    with pytest.raises(Exception, match="link"):
        engine.apply("quiet")


def test_a_customization_is_planned(engine: Engine) -> None:
    engine.customize("environment_variables.EDITOR", "nano")
    engine.apply("quiet")
    assert not engine.apply("quiet").applied
    with no_planning(engine):
        assert not engine.apply("quiet").applied


def test_another_engine_changing_the_machine_is_noticed(engine: Engine, tmp_path: Path) -> None:
    other = Engine(engine.root, user="alice", personas=engine.catalog.dirs, env={})
    assert other.apply_data({"name": "other", "environment_variables": {"B": "2"}}).applied
    result = engine.apply("quiet")
    assert result.applied and result.plan.persona == "quiet"
