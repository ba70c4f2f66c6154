"""The JSON Schema: generated from the models, describes every field, accepts the canonical
form (every rendered persona), rejects what the models reject at the shape level."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings

from mien.spec.models import TOP_LEVEL_FIELDS, Persona
from mien.spec.schema import FIELD_DESCRIPTIONS, SCHEMA_DIALECT, json_schema
from tests.unit.spec.test_spec_properties import personas


@pytest.fixture(scope="module")
def validator() -> Any:
    return jsonschema_rs.validator_for(json_schema())


def test_schema_header() -> None:
    schema = json_schema()
    assert schema["$schema"] == SCHEMA_DIALECT
    assert schema["title"] == "mien persona"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["description"] == "A persona: a declared role for a machine."


def test_every_top_level_field_is_in_the_schema_with_a_description() -> None:
    schema = json_schema()
    assert list(schema["properties"]) == list(TOP_LEVEL_FIELDS)
    assert set(FIELD_DESCRIPTIONS) == set(TOP_LEVEL_FIELDS)
    for name, prop in schema["properties"].items():
        assert prop["description"] == FIELD_DESCRIPTIONS[name], name


def test_model_docstrings_become_descriptions() -> None:
    defs = json_schema()["$defs"]
    assert defs["Rule"]["description"].startswith("An adaptation rule: when the CEL condition")
    assert defs["AppConfig"]["description"].startswith("One application's configuration file")


def test_value_types_are_described_with_canonical_defaults() -> None:
    every = json_schema()["$defs"]["DataSource"]["properties"]["every"]
    assert every["default"] == "5m"
    assert every["description"].startswith("A span of time.")
    timeout = json_schema()["$defs"]["Script"]["properties"]["timeout"]
    assert timeout["default"] == "5m"


@settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(personas())
def test_every_canonical_persona_validates(data: dict[str, Any]) -> None:
    validator = jsonschema_rs.validator_for(json_schema())
    errors = [str(e) for e in validator.iter_errors(data)]
    assert errors == []


FULL = {
    "name": "web-analyst",
    "display_name": "Web analyst",
    "description": "Analyst workstation",
    "extends": "base",
    "default_persona": True,
    "labels": {"team": "data", "tier": 1},
    "locked": ["behavioral_settings.security_scan_frequency"],
    "os_settings": {"theme": "dark", "editor": "vscode", "terminal_shell": "/bin/zsh"},
    "application_settings": {"ide_extensions": ["ms-python.python"], "other": {"x": 1}},
    "behavioral_settings": {"auto_update_frequency": "daily", "logging_level": "debug"},
    "environment_variables": {"EDITOR": "code", "PORT": 8080, "DEBUG": True},
    "application_configuration": {
        "jupyter": {"path": "/etc/j.json", "format": "json", "values": {"a": 1}, "mode": "0644"},
        "motd": {"path": "/etc/motd", "format": "text", "content": "hi\n", "owner": "root"},
    },
    "required_applications": [{"name": "pandas", "manager": "pip", "version": ">=2.2"}],
    "pre_activation_script": "#!/bin/sh\nexit 0\n",
    "post_activation_script": {"run": "true", "timeout": "1m"},
    "command_overrides": {"git": "/opt/git"},
    "restricted_commands": ["mkfs*"],
    "priority_metrics": {"performance": 0.6},
    "learning_domains": ["metrics"],
    "trust_levels": {"network_access": "medium"},
    "adaptation_rules": [
        {
            "name": "cpu",
            "when": "metrics.cpu_percent > 90.0",
            "for": "5m",
            "then": [{"action": "scale", "cpu": 4}],
            "cooldown": 300,
        }
    ],
    "decay_rate": 0.05,
    "external_data_sources": [
        {
            "name": "ti",
            "url": "https://ti.example.com/x",
            "every": "5m",
            "parse": "lines",
            "timeout": "10s",
            "then": [{"respond": "r"}],
        }
    ],
    "automated_responses": {"r": [{"action": "notify", "message": "x"}]},
    "resource_requirements": {
        "cpu": "500m",
        "memory": "4GiB",
        "storage": "20GiB",
        "network_bandwidth": "100Mbps",
        "priority": 5,
    },
    "access_controls": {
        "users": ["alice"],
        "filesystem": [{"path": "/srv", "mode": "ro"}],
        "network": {"egress": ["a:443"]},
        "level": "low",
    },
}


def test_a_full_persona_validates_and_is_a_valid_persona(validator: Any) -> None:
    assert [str(e) for e in validator.iter_errors(FULL)] == []
    Persona.model_validate(FULL)  # the schema and the models agree on this one


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"bogus": 1}, "Additional properties are not allowed ('bogus' was unexpected)"),
        ({"BaseConfiguration": {}}, "'BaseConfiguration' was unexpected"),
        ({"environment_variables": {"1BAD": "x"}}, "does not match"),
        ({"trust_levels": {"x": "extreme"}}, '"extreme" is not one of'),
        ({"learning_domains": ["dreams"]}, '"dreams" is not one of'),
        ({"priority_metrics": {"x": 2}}, "2 is greater than the maximum of 1"),
        ({"resource_requirements": {"gpu": 1}}, "'gpu' was unexpected"),
        ({"adaptation_rules": [{"when": "true"}]}, '"then" is a required property'),
        ({"pre_activation_script": ""}, "is not valid under any of the schemas listed"),
        (
            {"application_configuration": {"a": {"mode": "999"}}},
            "is not valid under any of the schemas listed",
        ),
    ],
)
def test_schema_rejects(validator: Any, patch: dict[str, Any], fragment: str) -> None:
    errors = " | ".join(str(e) for e in validator.iter_errors({"name": "x", **patch}))
    assert fragment in errors
