"""The application persona's fields: the flat ``application_configuration`` form (plain
values become one env file handed to the applications) and ``preemptible``."""

from __future__ import annotations

from pathlib import Path

from mien.spec.document import load_file
from mien.spec.models import APPLICATION_ENV_KEY, APPLICATION_ENV_PATH
from tests.unit.spec.spec_helpers import doc, problem

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "personas" / "marketing-app.json"


def test_flat_values_become_one_env_file() -> None:
    d = doc(
        "application_configuration:\n"
        "  database_connection_string: postgresql://db.internal/reports\n"
        "  retries: 3\n"
        "  git: {path: /etc/gitconfig, format: ini, values: {user: {name: ci}}}\n"
    )
    configs = d.persona.application_configuration
    env = configs[APPLICATION_ENV_KEY]
    assert env.path == APPLICATION_ENV_PATH and env.effective_format == "env"
    assert env.values == {
        "database_connection_string": "postgresql://db.internal/reports",
        "retries": 3,
    }
    assert configs["git"].path == "/etc/gitconfig"  # the structured form is untouched


def test_the_env_entry_name_is_kept_for_the_flat_form() -> None:
    text = (
        "application_configuration:\n"
        "  db: x\n"
        "  application_env: {path: /etc/a.env, values: {A: b}}\n"
    )
    assert "application_env is kept for the flat key-value settings" in problem(text)


def test_a_flat_value_that_is_nested_is_still_refused_clearly() -> None:
    assert "application_configuration.db" in problem("application_configuration:\n  db: [1, 2]\n")


def test_preemptible_defaults_to_false() -> None:
    assert doc("name: x\n").persona.resource_requirements.preemptible is False
    d = doc("resource_requirements: {priority: 5, preemptible: true}\n")
    assert d.persona.resource_requirements.preemptible is True
    assert "preemptible" in problem("resource_requirements: {preemptible: maybe}\n")


def test_the_seed_example_application_persona_loads_as_written() -> None:
    d = load_file(EXAMPLE)
    p = d.persona
    assert p.name == "marketing-report-creator"
    assert p.display_name == "Marketing Report Creator"
    env = p.application_configuration[APPLICATION_ENV_KEY]
    assert env.values and env.values["database_connection_string"].startswith("postgresql://")
    assert [a.name for a in p.required_applications] == ["python3", "sqlite3"]
    assert p.resource_requirements.memory and p.resource_requirements.memory.bytes == 512 * 2**20
    assert p.access_controls.users == ["group:marketing"]
