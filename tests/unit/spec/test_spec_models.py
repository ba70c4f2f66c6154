"""Field rules of the models and their messages: CEL conditions positioned inside the YAML,
configuration files, actions, scripts, locks, warnings. Table-driven where the cases are alike.
"""

from __future__ import annotations

import pytest

from mien.spec.canonical import canonical
from mien.spec.models import TOP_LEVEL_FIELDS, format_for_path
from tests.unit.spec.spec_helpers import doc, problem, problems

UNDECLARED = (
    "(conditions can use metrics, events, baseline, anomaly, priority, trust, persona, data, now)"
)

CEL_ERRORS: list[tuple[str, str, str]] = [
    (
        "plain",
        "adaptation_rules:\n  - when: metrics.cpu > && true\n    then: [{action: notify}]\n",
        "p.yaml:2:25: adaptation_rules[0].when: Syntax error: unexpected '&&'",
    ),
    (
        "single-quoted",
        "adaptation_rules:\n  - when: 'metrics.cpu > && true'\n    then: [{action: notify}]\n",
        "p.yaml:2:26: adaptation_rules[0].when: Syntax error: unexpected '&&'",
    ),
    (
        "double-quoted",
        'adaptation_rules:\n  - when: "metrics.cpu > && true"\n    then: [{action: notify}]\n',
        "p.yaml:2:26: adaptation_rules[0].when: Syntax error: unexpected '&&'",
    ),
    (
        "literal block, second line",
        "adaptation_rules:\n  - when: |\n      metrics.cpu_percent > 1.0 &&\n      nosuch.x > 2\n"
        "    then: [{action: notify}]\n",
        f"p.yaml:4:13: adaptation_rules[0].when: undeclared reference to 'nosuch.x' {UNDECLARED}",
    ),
    (
        "flow mapping",
        "adaptation_rules: [{when: 'metrics.a > 1 && nosuch.b', then: [{action: notify}]}]\n",
        f"p.yaml:1:51: adaptation_rules[0].when: undeclared reference to 'nosuch.b' {UNDECLARED}",
    ),
    (
        "end of input",
        "external_data_sources:\n  - url: https://a.example.com/\n    when: data.x >\n",
        "p.yaml:3:19: external_data_sources[0].when: Syntax error: unexpected end",
    ),
    (
        "type error",
        "adaptation_rules:\n  - when: metrics.a > 'x' && 1\n    then: [{action: notify}]\n",
        "p.yaml:2:27: adaptation_rules[0].when: found no matching overload for '_&&_' applied "
        "to '(bool, int)'",
    ),
    (
        "not a boolean",
        'adaptation_rules:\n  - when: "has(metrics.a) ? 1 : 2"\n    then: [{action: notify}]\n',
        "p.yaml:2:12: adaptation_rules[0].when: condition must be true or false, but this "
        "expression gives int",
    ),
]


@pytest.mark.parametrize(("case", "text", "message"), CEL_ERRORS, ids=[c[0] for c in CEL_ERRORS])
def test_cel_errors_are_positioned_in_the_file(case: str, text: str, message: str) -> None:
    assert problem(text) == message


def test_cel_error_in_json() -> None:
    text = '{"adaptation_rules": [{"when": "metrics.a > 1 && nosuch.b", "then": [{"action": "notify"}]}]}'
    assert problem(text, "p.json") == (
        f"p.json:1:56: adaptation_rules[0].when: undeclared reference to 'nosuch.b' {UNDECLARED}"
    )


FOLDED: list[tuple[str, str, str]] = [
    (
        "folded block",
        "adaptation_rules:\n  - when: >\n      metrics.cpu_percent > 1.0 &&\n      nosuch.x > 2\n"
        "    then: [{action: notify}]\n",
        "4:13",
    ),
    (
        "plain scalar over two lines",
        "adaptation_rules:\n  - when: metrics.cpu_percent > 1.0 &&\n      nosuch.x > 2\n"
        "    then: [{action: notify}]\n",
        "3:13",
    ),
    (
        "quoted scalar over two lines",
        'adaptation_rules:\n  - when: "metrics.cpu_percent > 1.0 &&\n      nosuch.x > 2"\n'
        "    then: [{action: notify}]\n",
        "3:13",
    ),
]


@pytest.mark.parametrize(("case", "text", "position"), FOLDED, ids=[c[0] for c in FOLDED])
def test_cel_errors_in_folded_scalars(case: str, text: str, position: str) -> None:
    assert problem(text) == (
        f"p.yaml:{position}: adaptation_rules[0].when: undeclared reference to 'nosuch.x' "
        f"{UNDECLARED}"
    )


@pytest.mark.parametrize(
    "condition",
    [
        "metrics.cpu_percent > 90.0",
        "metrics.cpu_percent > 90.0 && priority.performance > priority.security",
        "has(events.failed_logins) && events.failed_logins > 10",
        "baseline.memory_percent < 60.0 || trust.resource_scaling == 'high'",
        "persona.name == 'kiosk'",
        "size(data.vulnerabilities) > 0",
        "metrics.api_error_rate > 5.0 ? true : false",
        "true",
    ],
)
def test_conditions_that_compile(condition: str) -> None:
    text = f'adaptation_rules:\n  - when: "{condition}"\n    then: [{{action: notify}}]\n'
    assert doc(text).persona.adaptation_rules[0].when == condition


MODEL_ERRORS: list[tuple[str, str]] = [
    (
        "application_configuration:\n  a: {path: /x.txt, values: {a: 1}}\n",
        "p.yaml:2:6: application_configuration.a: a text file takes 'content', not 'values'",
    ),
    (
        "application_configuration:\n  a: {path: /x.txt}\n",
        "p.yaml:2:6: application_configuration.a: a text file needs 'content'",
    ),
    (
        "application_configuration:\n  a: {path: /x.json, content: hi}\n",
        "p.yaml:2:6: application_configuration.a: a json file takes 'values', not 'content'",
    ),
    (
        "application_configuration:\n  a: {path: /x.ini, values: {a: 1}}\n",
        "p.yaml:2:6: application_configuration.a: ini values are sections of keys: 'a' must be "
        "a mapping",
    ),
    (
        "application_configuration:\n  a: {path: /x.env, values: {a: {b: 1}}}\n",
        "p.yaml:2:6: application_configuration.a: env files hold plain values: 'a' is nested",
    ),
    (
        "application_configuration:\n  a: {path: /x.json, format: xml, values: {}}\n",
        "p.yaml:2:30: application_configuration.a.format: must be one of: 'json', 'yaml', "
        "'toml', 'ini', 'env' or 'text'",
    ),
    (
        "application_configuration:\n  a: {path: /x.json, mode: '999', values: {}}\n",
        "p.yaml:2:28: application_configuration.a.mode: '999' does not match the pattern "
        "^0?[0-7]{3,4}$",
    ),
    (
        "adaptation_rules:\n  - {when: 'true', then: [{action: a, respond: b}]}\n",
        "p.yaml:2:27: adaptation_rules[0].then[0]: give exactly one of 'action' (a built-in) "
        "or 'respond' (a name)",
    ),
    (
        "adaptation_rules:\n  - {when: 'true', then: [{}]}\n",
        "p.yaml:2:27: adaptation_rules[0].then[0]: give exactly one of 'action' (a built-in) "
        "or 'respond' (a name)",
    ),
    (
        "adaptation_rules:\n  - {when: 'true', then: []}\n",
        "p.yaml:2:26: adaptation_rules[0].then: must have at least 1 item(s)",
    ),
    (
        "adaptation_rules:\n  - {then: [{action: a}]}\n",
        "p.yaml:2:5: adaptation_rules[0].when: required field is missing",
    ),
    (
        "adaptation_rules:\n  - {when: 'true', then: [{action: a}], cooldown: soon}\n",
        "p.yaml:2:51: adaptation_rules[0].cooldown: 'soon' is not a duration: write e.g. 30s, "
        "5m, 2h, 1d or 1h30m",
    ),
    (
        "automated_responses: {x: []}\n",
        "p.yaml:1:26: automated_responses.x: must have at least 1 item(s)",
    ),
    (
        "pre_activation_script: ''\n",
        "p.yaml:1:24: pre_activation_script.run: must not be empty",
    ),
    (
        "post_activation_script: {run: x, timeout: forever}\n",
        "p.yaml:1:43: post_activation_script.timeout: 'forever' is not a duration: write e.g. "
        "30s, 5m, 2h, 1d or 1h30m",
    ),
    (
        "command_overrides: {git: ''}\n",
        "p.yaml:1:26: command_overrides.git: must not be empty",
    ),
    (
        "command_overrides: {git: /opt/git}\nrestricted_commands: [git]\n",
        "p.yaml:1:1: (document): git: a command cannot be both overridden and restricted",
    ),
    (
        "locked: [nope.x]\n",
        "p.yaml:1:9: locked: 'nope.x' does not name a persona setting",
    ),
    (
        "locked: [name]\n",
        "p.yaml:1:9: locked: 'name' does not name a persona setting",
    ),
    (
        "learning_domains: [metrics, dreams]\n",
        "p.yaml:1:29: learning_domains[1]: must be one of: 'metrics', 'system_logs', "
        "'network_traffic', 'api_calls', 'processes', 'file_access' or 'auth_events'",
    ),
    (
        "required_applications: [{name: git, manager: brew}]\n",
        "p.yaml:1:46: required_applications[0].manager: must be one of: 'apt', 'pip', 'npm', "
        "'snap', 'flatpak' or 'cargo'",
    ),
    (
        "access_controls: {filesystem: [{path: /srv, mode: rwx}]}\n",
        "p.yaml:1:51: access_controls.filesystem[0].mode: must be one of: 'ro' or 'rw'",
    ),
    (
        "default_persona: maybe\n",
        "p.yaml:1:18: default_persona: must be a valid boolean, unable to interpret input",
    ),
]


@pytest.mark.parametrize(("text", "message"), MODEL_ERRORS)
def test_model_errors(text: str, message: str) -> None:
    assert problem(text) == message


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("/a.json", "json"),
        ("/a.yaml", "yaml"),
        ("/a.YML", "yaml"),
        ("/a.toml", "toml"),
        ("/a.ini", "ini"),
        ("/a.cfg", "ini"),
        ("/a.conf", "ini"),
        ("/a.env", "env"),
        ("/a.txt", "text"),
        ("/etc/default/app", "text"),
    ],
)
def test_format_from_file_name(path: str, fmt: str) -> None:
    assert format_for_path(path) == fmt


def test_config_without_path_is_stored_as_json_values() -> None:
    persona = doc("application_configuration:\n  app: {values: {a: 1}}\n").persona
    assert persona.application_configuration["app"].effective_format == "json"


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("pre_activation_script: echo hi\n", "echo hi"),
        ("pre_activation_script: {run: echo hi}\n", "echo hi"),
        ("pre_activation_script: {run: echo hi, timeout: 5m}\n", "echo hi"),
        ("pre_activation_script: {run: echo hi, timeout: 300}\n", "echo hi"),
        (
            "pre_activation_script: {run: echo hi, timeout: 1m}\n",
            {"run": "echo hi", "timeout": "1m"},
        ),
    ],
)
def test_script_canonical_form(text: str, rendered: object) -> None:
    """A script with the default timeout is just its text."""
    assert canonical(doc(text).persona)["pre_activation_script"] == rendered


def test_open_settings_keep_unknown_keys() -> None:
    text = (
        "os_settings: {theme: dark, keyboard_layout: us}\nbehavioral_settings: {retention: 90d}\n"
    )
    data = canonical(doc(text).persona)
    assert data["os_settings"] == {"theme": "dark", "keyboard_layout": "us"}
    assert data["behavioral_settings"] == {"retention": "90d"}


@pytest.mark.parametrize("field", [f for f in TOP_LEVEL_FIELDS if f not in ("name", "locked")])
def test_every_setting_can_be_locked(field: str) -> None:
    assert doc(f"locked: [{field}]\n").persona.locked == [field]


WARNINGS: list[tuple[str, list[str]]] = [
    (
        "adaptation_rules:\n  - {when: 'true', then: [{respond: nope}]}\n",
        [
            "p.yaml:2:37: adaptation_rules[0].then[0].respond: warning: response 'nope' is not "
            "defined under automated_responses: it will be reported as 'no handler'"
        ],
    ),
    (
        "external_data_sources:\n  - {url: 'https://a.example.com/', then: [{respond: nope}]}\n",
        [
            "p.yaml:2:54: external_data_sources[0].then[0].respond: warning: response 'nope' is "
            "not defined under automated_responses: it will be reported as 'no handler'"
        ],
    ),
    (
        "priority_metrics: {performance: 1}\nadaptation_rules:\n  - {when: 'true', then: [{action: scale, cpu: 2}]}\n",
        [
            "p.yaml:3:3: adaptation_rules: warning: no trust_levels: every action that needs "
            "trust will be refused"
        ],
    ),
    (
        "adaptation_rules:\n  - {when: 'true', then: [{respond: x}]}\nautomated_responses: {x: [{action: notify}]}\n",
        [],
    ),
]


@pytest.mark.parametrize(("text", "warnings"), WARNINGS)
def test_warnings(text: str, warnings: list[str]) -> None:
    assert [str(w) for w in doc(text).warnings] == warnings


def test_a_valid_document_has_no_problems_and_errors_are_not_warnings() -> None:
    assert problems("name: a\nrestricted_commands: [a b]\n")[0].split(": ")[-2] != "warning"
