"""The seeds' spellings and the phrase grammar: each reads into the canonical form.

Every seed's own example loads as it stands (its text is repeated here, so this tier reads
no files; the integration tests check the files themselves), and every spelling the forms
module knows is exercised with the canonical data it becomes.
"""

from __future__ import annotations

from typing import Any

import pytest

from mien.spec import phrases
from mien.spec.canonical import canonical
from mien.spec.forms import _package, snake
from tests.unit.spec.spec_helpers import doc, problem, problems

SEED_000 = """\
persona_developer:
  os_settings:
    theme: dark
    editor: VSCode
    terminal_shell: zsh
  application_settings:
    ide_extensions: ['python', 'docker', 'gitlens']
    browser_extensions: ['adblock', 'https everywhere']
  behavioral_settings:
    auto_update_frequency: daily
    logging_level: debug
    security_scan_frequency: weekly
"""

SEED_004 = """\
BaseConfiguration:
    CPU: 8 cores
    Memory: 32 GB
    NetworkBandwidth: 10 Gbps

SoftwareStack:
    - Nginx (latest version)
    - Redis (caching)
    - Prometheus (metrics collection)

TelemetryTriggers:
    - Condition: CPU Load > 80% for 5 minutes
      Action: Scale up to 16 cores
    - Condition: Network Latency > 100ms
      Action: Activate CDN caching

ExternalDataSources:
    - URL: "https://threatintel.example.com/latest_ips"
      Frequency: 5 minutes
      Action: Update firewall rules to block malicious IPs
"""


def test_seed_000_wrapped_form() -> None:
    d = doc(SEED_000, "persona_developer.yml")
    assert d.data["name"] == "developer"
    assert canonical(d.persona) == {
        "name": "developer",
        "os_settings": {"theme": "dark", "editor": "VSCode", "terminal_shell": "zsh"},
        "application_settings": {
            "ide_extensions": ["python", "docker", "gitlens"],
            "browser_extensions": ["adblock", "https everywhere"],
        },
        "behavioral_settings": {
            "auto_update_frequency": "daily",
            "security_scan_frequency": "weekly",
            "logging_level": "debug",
        },
    }


def test_seed_000_wrapped_errors_point_into_the_wrapper() -> None:
    text = "persona_developer:\n  os_settings:\n    theme: dark\n  behavioral_settings:\n    logging_level: loud\n"
    assert problem(text) == (
        "p.yaml:5:20: behavioral_settings.logging_level: must be one of: 'debug', 'info', "
        "'warning', 'error' or 'critical'"
    )


def test_seed_001_fields() -> None:
    text = """{
      "name": "test-runner",
      "environment_variables": {"APP_ENV": "test"},
      "pre_activation_script": "#!/bin/sh\\necho pre\\n",
      "post_activation_script": "#!/bin/sh\\necho post\\n",
      "command_overrides": {"pytest": "/usr/bin/env python3 -m pytest"},
      "restricted_commands": ["shutdown", "mkfs*"],
      "default_persona": true
    }"""
    data = canonical(doc(text, "t.json").persona)
    assert data == {
        "name": "test-runner",
        "default_persona": True,
        "environment_variables": {"APP_ENV": "test"},
        "pre_activation_script": "#!/bin/sh\necho pre\n",
        "post_activation_script": "#!/bin/sh\necho post\n",
        "command_overrides": {"pytest": "/usr/bin/env python3 -m pytest"},
        "restricted_commands": ["shutdown", "mkfs*"],
    }


def test_seed_002_pdl_in_words() -> None:
    text = """\
priority_metrics: {performance: 0.6, security: 0.3, cost: 0.1}
learning_domains: [system metrics, network traffic, system logs, application API calls]
trust_levels:
  network access: medium
  file system modification: low
adaptation_rules:
  - IF CPU utilization > 90% AND priority_metrics[performance] > priority_metrics[security] THEN increase allocated cores
decay_rate: 0.05
"""
    data = canonical(doc(text, "self-optimizing.yaml").persona)
    assert data["learning_domains"] == ["metrics", "network_traffic", "system_logs", "api_calls"]
    assert data["trust_levels"] == {"network_access": "medium", "file_system_modification": "low"}
    assert data["adaptation_rules"] == [
        {
            "name": "cpu-utilization-90-and-priority-metrics-performance-priority-me",
            "when": "metrics.cpu_percent > 90.0 && priority.performance > priority.security",
            "then": [{"action": "scale", "cpu": "+1"}],
        }
    ]


def test_seed_003_application_persona() -> None:
    text = """{
      "persona_id": "marketing-report",
      "persona_name": "Marketing Report Creator",
      "required_applications": ["libreoffice-calc", "pip:pandas>=2.2"],
      "resource_requirements": {"cpu": 2, "memory": "4GiB", "storage": "20GiB",
                                "network_bandwidth": "100Mbps", "priority": 10}
    }"""
    data = canonical(doc(text, "m.json").persona)
    assert data["name"] == "marketing-report"
    assert data["display_name"] == "Marketing Report Creator"
    assert data["required_applications"] == [
        {"name": "libreoffice-calc"},
        {"name": "pandas", "manager": "pip", "version": ">=2.2"},
    ]
    assert data["resource_requirements"]["memory"] == "4GiB"


def test_seed_003_name_from_persona_name_alone() -> None:
    assert doc('{"persona_name": "Code Reviewer"}', "x.json").name == "code-reviewer"


def test_seed_004_pdl() -> None:
    d = doc(SEED_004, "HighTraffic.yaml")
    assert canonical(d.persona) == {
        "name": "HighTraffic",
        "required_applications": [
            {"name": "nginx", "version": "latest"},
            {"name": "redis", "purpose": "caching"},
            {"name": "prometheus", "purpose": "metrics collection"},
        ],
        "adaptation_rules": [
            {
                "name": "cpu-load-80-for-5-minutes",
                "when": "metrics.cpu_percent > 80.0",
                "for": "5m",
                "then": [{"action": "scale", "cpu": 16}],
            },
            {
                "name": "network-latency-100ms",
                "when": 'metrics["latency_ms:default"] > 100.0',
                "then": [{"respond": "activate-cdn-caching"}],
            },
        ],
        "external_data_sources": [
            {
                "name": "threatintel-example-com-latest-ips",
                "url": "https://threatintel.example.com/latest_ips",
                "then": [{"action": "firewall_block", "from": "data"}],
            }
        ],
        "resource_requirements": {"cpu": 8, "memory": "32GB", "network_bandwidth": "10Gbps"},
    }
    # The unknown action phrase is a named response, and the sketch grants no learning
    # domain yet: valid, with warnings saying so.
    assert [str(w) for w in d.warnings] == [
        "HighTraffic.yaml:12:18: adaptation_rules[0].when: warning: reads 'cpu_percent', a "
        "metric of the learning domain 'metrics', which learning_domains does not grant: it "
        "is never collected, and the rule stays unknown until learning_domains lists 'metrics'",
        "HighTraffic.yaml:14:18: adaptation_rules[1].when: warning: reads 'latency_ms:default', "
        "a metric of the learning domain 'metrics', which learning_domains does not grant: it "
        "is never collected, and the rule stays unknown until learning_domains lists 'metrics'",
        "HighTraffic.yaml:15:15: adaptation_rules[1].then[0].respond: warning: response "
        "'activate-cdn-caching' is not defined under automated_responses: it will be "
        "reported as 'no handler'",
    ]


def test_seed_004_phrase_error_points_at_the_phrase() -> None:
    text = "TelemetryTriggers:\n  - Condition: Temperature > 80\n    Action: Scale up to 16 cores\n"
    message = problem(text)
    assert message.startswith(
        "p.yaml:2:16: adaptation_rules[0].when: unknown metric 'Temperature'; known phrases: "
    )


def test_seed_004_automated_responses_list_form() -> None:
    text = """\
LearningDomains: [system metrics]
AutomatedResponses:
  - name: cdn-on
    actions: [{action: notify, message: on}]
TelemetryTriggers:
  - Condition: Network Latency > 100ms
    Action: [{respond: cdn-on}]
"""
    d = doc(text)
    assert d.data["automated_responses"] == {"cdn-on": [{"action": "notify", "message": "on"}]}
    assert d.warnings == []


# --- spellings, table-driven --------------------------------------------------------------

TOP_LEVEL: list[tuple[str, str, Any]] = [
    ("BaseConfiguration: {CPU: 2}", "resource_requirements", {"cpu": 2}),
    ("base_configuration: {cpu: 2}", "resource_requirements", {"cpu": 2}),
    ("SoftwareStack: [git]", "required_applications", [{"name": "git"}]),
    ("software_stack: [git]", "required_applications", [{"name": "git"}]),
    (
        "TelemetryTriggers: [{when: 'true', then: [{action: notify}]}]",
        "adaptation_rules",
        [{"when": "true", "then": [{"action": "notify"}]}],
    ),
    (
        "ExternalDataSources: [{url: 'https://a.example.com/x', name: a}]",
        "external_data_sources",
        [{"name": "a", "url": "https://a.example.com/x"}],
    ),
    (
        "AutomatedResponses: {x: [{action: notify}]}",
        "automated_responses",
        {"x": [{"action": "notify"}]},
    ),
    ("persona_id: abc", "name", "abc"),
    ("persona_name: Abc Def", "display_name", "Abc Def"),
    ("OsSettings: {theme: dark}", "os_settings", {"theme": "dark"}),
    ("EnvironmentVariables: {A: b}", "environment_variables", {"A": "b"}),
    ("RestrictedCommands: [dd]", "restricted_commands", ["dd"]),
]


@pytest.mark.parametrize(("text", "key", "value"), TOP_LEVEL)
def test_top_level_spellings(text: str, key: str, value: Any) -> None:
    assert canonical(doc(text + "\n").persona)[key] == value


RESOURCES: list[tuple[str, dict[str, Any]]] = [
    ("{CPU: 8 cores}", {"cpu": 8}),
    ("{cpus: 2}", {"cpu": 2}),
    ("{cores: 2}", {"cpu": 2}),
    ("{vcpu: 2}", {"cpu": 2}),
    ("{RAM: 4GiB}", {"memory": "4GiB"}),
    ("{Memory: 32 GB}", {"memory": "32GB"}),
    ("{disk: 20GiB}", {"storage": "20GiB"}),
    ("{Storage: 1TiB}", {"storage": "1TiB"}),
    ("{network: 1Gbps}", {"network_bandwidth": "1Gbps"}),
    ("{bandwidth: 1Gbps}", {"network_bandwidth": "1Gbps"}),
    ("{NetworkBandwidth: 10 Gbps}", {"network_bandwidth": "10Gbps"}),
    ("{Priority: 5}", {"priority": 5}),
]


@pytest.mark.parametrize(("text", "value"), RESOURCES)
def test_resource_spellings(text: str, value: dict[str, Any]) -> None:
    data = canonical(doc(f"resource_requirements: {text}\n").persona)
    assert data["resource_requirements"] == value


RULE_KEYS: list[tuple[str, dict[str, Any]]] = [
    (
        "{condition: 'metrics.cpu_percent > 1.0', action: [{action: notify}]}",
        {"when": "metrics.cpu_percent > 1.0", "then": [{"action": "notify"}]},
    ),
    (
        "{if: 'metrics.cpu_percent > 1.0', actions: [{action: notify}]}",
        {"when": "metrics.cpu_percent > 1.0", "then": [{"action": "notify"}]},
    ),
    (
        "{when: 'metrics.cpu_percent > 1.0', then: {action: notify}}",
        {"when": "metrics.cpu_percent > 1.0", "then": [{"action": "notify"}]},
    ),
    (
        "{Condition: Memory usage > 90% for 2m, Action: Restart nginx}",
        {
            "name": "memory-usage-90-for-2m",
            "when": "metrics.memory_percent > 90.0",
            "for": "2m",
            "then": [{"action": "restart_service", "service": "nginx"}],
        },
    ),
    (
        "{when: CPU > 50% for 1 minute, for: 5m, then: notify ops}",
        {
            "name": "cpu-50-for-1-minute",
            "when": "metrics.cpu_percent > 50.0",
            "for": "5m",
            "then": [{"action": "notify", "message": "ops"}],
        },
    ),
]


@pytest.mark.parametrize(("text", "rule"), RULE_KEYS)
def test_rule_spellings(text: str, rule: dict[str, Any]) -> None:
    data = canonical(doc(f"adaptation_rules: [{text}]\n").persona)
    assert data["adaptation_rules"] == [rule]


SOURCE_KEYS: list[tuple[str, dict[str, Any]]] = [
    (
        "[{URL: 'https://a.example.com/x', Frequency: 10 minutes, Action: notify ops}]",
        {
            "name": "a-example-com-x",
            "url": "https://a.example.com/x",
            "every": "10m",
            "then": [{"action": "notify", "message": "ops"}],
        },
    ),
    (
        "[{url: 'https://a.example.com/x', interval: 1h, actions: {action: notify}}]",
        {
            "name": "a-example-com-x",
            "url": "https://a.example.com/x",
            "every": "1h",
            "then": [{"action": "notify"}],
        },
    ),
    (
        "{feed: {url: 'https://a.example.com/x', parse: json}}",
        {"name": "feed", "url": "https://a.example.com/x", "parse": "json"},
    ),
]


@pytest.mark.parametrize(("text", "source"), SOURCE_KEYS)
def test_data_source_spellings(text: str, source: dict[str, Any]) -> None:
    data = canonical(doc(f"external_data_sources: {text}\n").persona)
    assert data["external_data_sources"] == [source]


DOMAINS: list[tuple[str, str]] = [
    ("metrics", "metrics"),
    ("system metrics", "metrics"),
    ("System Logs", "system_logs"),
    ("logs", "system_logs"),
    ("network traffic", "network_traffic"),
    ("Network  Traffic", "network_traffic"),
    ("application API calls", "api_calls"),
    ("api calls", "api_calls"),
    ("process activity", "processes"),
    ("processes", "processes"),
    ("file access", "file_access"),
    ("authentication events", "auth_events"),
    ("AuthEvents", "auth_events"),
]


@pytest.mark.parametrize(("text", "domain"), DOMAINS)
def test_learning_domain_spellings(text: str, domain: str) -> None:
    assert doc(f"learning_domains: [{text}]\n").persona.learning_domains == [domain]


def test_priority_metrics_list_form() -> None:
    text = "priority_metrics:\n  - {metric: CPU Utilization, weight: 0.7}\n  - {metric: Cost, weight: 0.3}\n"
    assert doc(text).data["priority_metrics"] == {"cpu_utilization": 0.7, "cost": 0.3}


def test_priority_metrics_list_form_error() -> None:
    assert problem("priority_metrics: [{metric: cpu}]\n") == (
        "p.yaml:1:20: priority_metrics[0]: write weights as 'metric: weight' or a list of "
        "{metric, weight}"
    )


def test_automated_responses_list_needs_names() -> None:
    assert problem("automated_responses: [{then: [{action: notify}]}]\n") == (
        "p.yaml:1:23: automated_responses[0]: each response needs a 'name'"
    )


PACKAGES: list[tuple[str, dict[str, Any] | None]] = [
    ("git", {"name": "git"}),
    ("Nginx (latest version)", {"name": "nginx", "version": "latest"}),
    ("nginx (latest)", {"name": "nginx", "version": "latest"}),
    ("nginx ( newest )", {"name": "nginx", "version": "latest"}),
    ("Redis (caching)", {"name": "redis", "purpose": "caching"}),
    ("postgresql (version 15)", {"name": "postgresql", "version": "15"}),
    ("python3 (v3.11)", {"name": "python3", "version": "3.11"}),
    ("nginx=1.24", {"name": "nginx", "version": "1.24"}),
    ("pip:pandas>=2.2", {"name": "pandas", "manager": "pip", "version": ">=2.2"}),
    ("pip:Django~=5.0", {"name": "Django", "manager": "pip", "version": "~=5.0"}),
    ("pip:requests==2.32.3", {"name": "requests", "manager": "pip", "version": "2.32.3"}),
    ("npm:typescript@5.6.3", {"name": "typescript", "manager": "npm", "version": "5.6.3"}),
    ("npm:@angular/cli", {"name": "@angular/cli", "manager": "npm"}),
    ("cargo:ripgrep", {"name": "ripgrep", "manager": "cargo"}),
    ("snap:code (classic)", {"name": "code", "manager": "snap", "purpose": "classic"}),
    ("flatpak:org.gimp.GIMP", {"name": "org.gimp.GIMP", "manager": "flatpak"}),
    ("apt:Nginx", {"name": "Nginx", "manager": "apt"}),
    ("bad name!", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "package"), PACKAGES)
def test_package_spellings(text: str, package: dict[str, Any] | None) -> None:
    assert _package(text) == package


def test_package_error_message() -> None:
    assert problem("required_applications: ['!!!']\n") == (
        "p.yaml:1:25: required_applications[0]: cannot read package '!!!': write a package "
        "name, optionally 'manager:name' and a version ('pip:pandas>=2.2', 'nginx (latest)')"
    )


@pytest.mark.parametrize(
    ("key", "snake_key"),
    [
        ("NetworkBandwidth", "network_bandwidth"),
        ("CPU", "cpu"),
        ("URL", "url"),
        ("BaseConfiguration", "base_configuration"),
        ("Network Bandwidth", "network_bandwidth"),
        ("network-bandwidth", "network_bandwidth"),
        ("HTTPProxy", "http_proxy"),
        ("already_snake", "already_snake"),
    ],
)
def test_snake_case(key: str, snake_key: str) -> None:
    assert snake(key) == snake_key


def test_user_keys_are_never_respelled() -> None:
    text = "environment_variables: {HttpProxy: x}\nlabels: {CostCenter: y}\ncommand_overrides: {MyTool: /opt/t}\n"
    data = doc(text).data
    assert data["environment_variables"] == {"HttpProxy": "x"}
    assert data["labels"] == {"CostCenter": "y"}
    assert data["command_overrides"] == {"MyTool": "/opt/t"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nmae: x\n", "p.yaml:1:1: nmae: unknown field; did you mean 'name'?"),
        ("os_setings: {}\n", "p.yaml:1:1: os_setings: unknown field; did you mean 'os_settings'?"),
        ("foo: 1\n", "p.yaml:1:1: foo: unknown field"),
        (
            "name: a\nos_settings: {}\nOsSettings: {}\n",
            "p.yaml:3:1: os_settings: 'OsSettings' sets 'os_settings' a second time",
        ),
        (
            "resource_requirements: {cpu: 1, cores: 2}\n",
            "p.yaml:1:33: resource_requirements.cpu: 'cores' sets 'cpu' a second time",
        ),
        (
            "resource_requirements: {gpu: 1}\n",
            "p.yaml:1:25: resource_requirements.gpu: unknown field; did you mean 'cpu'?",
        ),
        (
            "- a\n- b\n",
            "p.yaml:1:1: (document): a persona is a mapping of fields, but this document is a list",
        ),
        (
            "hello\n",
            "p.yaml:1:1: (document): a persona is a mapping of fields, but this document is the value 'hello'",
        ),
    ],
)
def test_structure_errors(text: str, message: str) -> None:
    assert problem(text) == message


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("persona_data_analyst.yml", "data_analyst"),
        ("persona-kiosk.yaml", "kiosk"),
        ("HighTraffic.yaml", "HighTraffic"),
        ("My Persona!.yaml", "My-Persona"),
    ],
)
def test_name_from_file_stem(source: str, name: str) -> None:
    assert doc("os_settings: {theme: dark}\n", source).name == name


def test_overlays_get_no_name() -> None:
    assert "name" not in doc("os_settings: {theme: dark}\n", "o.yaml", overlay=True).data


# --- the phrase grammar --------------------------------------------------------------------

METRIC_PHRASES = sorted(phrases.METRICS.items())


@pytest.mark.parametrize(("phrase", "entry"), METRIC_PHRASES)
def test_every_metric_phrase(phrase: str, entry: tuple[str, str]) -> None:
    reference, unit = entry
    cel, duration = phrases.condition(f"{phrase.title()} > 5{unit}")
    assert cel == f"{reference} > 5.0"
    assert duration is None


CONDITIONS: list[tuple[str, str, str | None]] = [
    ("CPU Load > 80% for 5 minutes", "metrics.cpu_percent > 80.0", "5 minutes"),
    ("Network Latency > 100ms", 'metrics["latency_ms:default"] > 100.0', None),
    ("network latency above 0.5s", 'metrics["latency_ms:default"] > 500.0', None),
    ("latency over 2 seconds", 'metrics["latency_ms:default"] > 2000.0', None),
    ("Memory usage >= 90%", "metrics.memory_percent >= 90.0", None),
    ("Disk usage exceeds 95 %", 'metrics["disk_percent:/"] > 95.0', None),
    ("processes below 10", "metrics.process_count < 10.0", None),
    ("error rates under 1% for 1 hour", "metrics.api_error_rate < 1.0", "1 hour"),
    ("CPU <= 5%", "metrics.cpu_percent <= 5.0", None),
    ("CPU = 100%", "metrics.cpu_percent == 100.0", None),
    ("CPU == 100%", "metrics.cpu_percent == 100.0", None),
    ("CPU != 0%", "metrics.cpu_percent != 0.0", None),
    (
        "Error Rate > 5% or CPU > 90%",
        "metrics.api_error_rate > 5.0 || metrics.cpu_percent > 90.0",
        None,
    ),
    (
        "CPU Load > 80% AND Memory > 50% for 10m",
        "metrics.cpu_percent > 80.0 && metrics.memory_percent > 50.0",
        "10m",
    ),
    (
        "priority_metrics[performance] > priority_metrics['security']",
        "priority.performance > priority.security",
        None,
    ),
    ("metrics.load_1m > 4", "metrics.load_1m > 4.0", None),
]


@pytest.mark.parametrize(("text", "cel", "duration"), CONDITIONS)
def test_condition_phrases(text: str, cel: str, duration: str | None) -> None:
    assert phrases.condition(text) == (cel, duration)


CONDITION_ERRORS: list[tuple[str, str]] = [
    ("CPU Load > 80ms", "'CPU Load' is measured in %, not ms"),
    ("Network Latency > 5%", "'Network Latency' is measured in ms, not %"),
    ("CPU Load is high", "cannot read 'CPU Load is high': expected e.g. 'CPU Load > 80%'"),
]


@pytest.mark.parametrize(("text", "message"), CONDITION_ERRORS)
def test_condition_phrase_errors(text: str, message: str) -> None:
    with pytest.raises(phrases.PhraseError) as info:
        phrases.condition(text)
    assert str(info.value) == message


def test_unknown_metric_lists_the_vocabulary() -> None:
    with pytest.raises(phrases.PhraseError) as info:
        phrases.condition("Temperature > 80")
    message = str(info.value)
    assert message.startswith("unknown metric 'Temperature'; known phrases: ")
    for phrase in ("cpu load", "network latency", "error rate", "memory usage"):
        assert phrase in message


ACTIONS: list[tuple[str, list[dict[str, Any]]]] = [
    ("Scale up to 16 cores", [{"action": "scale", "cpu": 16}]),
    ("scale down to 2 CPUs", [{"action": "scale", "cpu": 2}]),
    ("scale to 0.5 vcpus", [{"action": "scale", "cpu": 0.5}]),
    ("Scale memory to 64 GB", [{"action": "scale", "memory": "64GB"}]),
    ("scale up to 64gib memory", [{"action": "scale", "memory": "64GiB"}]),
    ("increase allocated cores", [{"action": "scale", "cpu": "+1"}]),
    ("add more cpus", [{"action": "scale", "cpu": "+1"}]),
    ("reduce cores", [{"action": "scale", "cpu": "-1"}]),
    (
        "Update firewall rules to block malicious IPs",
        [{"action": "firewall_block", "from": "data"}],
    ),
    ("block malicious IP", [{"action": "firewall_block", "from": "data"}]),
    ("restart nginx", [{"action": "restart_service", "service": "nginx"}]),
    (
        "Restart the redis-server service",
        [{"action": "restart_service", "service": "redis-server"}],
    ),
    ("switch to kiosk", [{"action": "switch_persona", "persona": "kiosk"}]),
    ("shift persona to safe-mode", [{"action": "switch_persona", "persona": "safe-mode"}]),
    ("notify ops", [{"action": "notify", "message": "ops"}]),
    ("Alert security team.", [{"action": "notify", "message": "security team"}]),
    ("Activate CDN caching", [{"respond": "activate-cdn-caching"}]),
    (
        "Activate CDN caching and notify ops",
        [{"respond": "activate-cdn-caching"}, {"action": "notify", "message": "ops"}],
    ),
    (
        "scale to 16 cores; restart nginx",
        [{"action": "scale", "cpu": 16}, {"action": "restart_service", "service": "nginx"}],
    ),
]


@pytest.mark.parametrize(("text", "actions"), ACTIONS)
def test_action_phrases(text: str, actions: list[dict[str, Any]]) -> None:
    assert phrases.actions(text) == actions


def test_rule_in_words() -> None:
    assert phrases.rule("if memory > 90% for 5m then notify ops") == {
        "name": "memory-90-for-5m",
        "when": "metrics.memory_percent > 90.0",
        "for": "5m",
        "then": [{"action": "notify", "message": "ops"}],
    }


def test_rule_in_words_needs_if_then() -> None:
    assert problem("adaptation_rules: ['CPU > 90 then scale']\n") == (
        "p.yaml:1:20: adaptation_rules[0]: a rule in words reads 'IF <condition> THEN "
        "<action>', e.g. 'IF CPU utilization > 90% THEN increase allocated cores'"
    )


@pytest.mark.parametrize(
    ("text", "slug"),
    [("Activate CDN caching", "activate-cdn-caching"), ("!!!", "response"), ("a" * 80, "a" * 63)],
)
def test_slug(text: str, slug: str) -> None:
    assert phrases.slug(text) == slug


def test_every_problem_is_reported_at_once() -> None:
    text = "nmae: x\nresource_requirements: {cpu: 0, memory: lots}\nrestricted_commands: [a b]\n"
    assert problems(text) == [
        "p.yaml:1:1: nmae: unknown field; did you mean 'name'?",
        "p.yaml:2:30: resource_requirements.cpu: 0: CPU cores must be more than 0 and at most 4096",
        "p.yaml:2:41: resource_requirements.memory: 'lots' is not a size: write e.g. 512MiB, "
        "4GiB or 32GB",
        "p.yaml:3:23: restricted_commands[0]: 'a b' is not a command name: a bare name such as "
        "'git' or a pattern such as 'mkfs*', without '/', spaces or quotes",
    ]
