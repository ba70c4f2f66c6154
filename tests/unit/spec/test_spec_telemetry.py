"""The persona's ``telemetry:`` section: defaults, validation at FILE:LINE:COL, metric table."""

from __future__ import annotations

import pytest

from mien.spec.canonical import canonical
from mien.spec.models import Persona
from tests.unit.spec.spec_helpers import doc, problem, problems


def test_defaults_are_not_rendered() -> None:
    persona = Persona()
    t = persona.telemetry
    assert t.interval.seconds == 15.0 and t.auth_log == "/var/log/auth.log"
    assert "telemetry" not in canonical(persona)


def test_a_full_section() -> None:
    d = doc(
        "name: web\n"
        "learning_domains: [metrics, system_logs, api_calls]\n"
        "telemetry:\n"
        "  interval: 5s\n"
        "  logs: [{name: app, path: /var/log/app.log}]\n"
        "  access_log: {path: /var/log/nginx/access.log, format: jsonl}\n"
        "  probes:\n"
        "    - {name: db, tcp: '127.0.0.1:5432', timeout: 2s}\n"
        "    - {name: home, http: 'http://127.0.0.1:8080/'}\n"
        "  processes: [nginx]\n"
        "  watch: [{name: etc, path: /etc/nginx}]\n"
        "  scan_findings: /var/lib/scan/findings.json\n"
    )
    t = d.persona.telemetry
    assert t.interval.seconds == 5.0
    assert t.logs[0].pattern == "error|fail|critical"
    assert t.probes[0].target == "127.0.0.1:5432" and t.probes[1].target == "127.0.0.1:8080"
    assert canonical(d.persona)["telemetry"]["probes"][0]["tcp"] == "127.0.0.1:5432"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  interval: 0.5s\n", "p.yaml:4:13: telemetry.interval: sample at most every second"),
        (
            "  probes: [{name: a, tcp: 'h:1', http: 'http://h/'}]\n",
            "p.yaml:4:12: telemetry.probes[0]: give the probe's target exactly one way",
        ),
        ("  probes: [{name: a}]\n", "p.yaml:4:12: telemetry.probes[0]: give the probe's target"),
        (
            "  probes: [{name: a, tcp: 'h:99999'}]\n",
            "telemetry.probes[0].tcp: 'h:99999' is not host:port",
        ),
        (
            "  probes: [{name: a, http: 'ftp://h/'}]\n",
            "telemetry.probes[0].http: 'ftp://h/' is not an http(s) URL",
        ),
        (
            "  logs: [{name: a, path: /l, pattern: '(x'}]\n",
            "telemetry.logs[0].pattern: '(x' is not a regular",
        ),
        (
            "  logs: [{name: a, path: ~/l}]\n",
            "telemetry.logs[0].path: '~/l' is not an absolute path on the machine",
        ),
        (
            "  watch: [{name: a, path: /x/../etc}]\n",
            "telemetry.watch[0].path: '/x/../etc': '..' is not allowed",
        ),
        ("  access_log: {path: /a, format: apache}\n", "telemetry.access_log.format"),
        (
            "  watch: [{name: a, path: /x}, {name: a, path: /y}]\n",
            "telemetry: watch: the name 'a' is given twice",
        ),
        ("  colour: blue\n", "telemetry.colour"),
    ],
)
def test_bad_sections_are_positioned(body: str, expected: str) -> None:
    text = "name: t\nlearning_domains: [metrics]\ntelemetry:\n" + body
    assert expected in problem(text), problems(text)


def test_parts_whose_domain_is_not_granted_are_warned_about() -> None:
    d = doc(
        "name: t\n"
        "learning_domains: [metrics]\n"
        "telemetry:\n"
        "  logs: [{name: a, path: /var/log/a.log}]\n"
        "  probes: [{name: p, tcp: '127.0.0.1:80'}]\n"
        "  auth_log: /var/log/secure\n"
    )
    assert [str(w) for w in d.warnings] == [
        "p.yaml:4:9: telemetry.logs: warning: system_logs is not in learning_domains,"
        " so telemetry.logs is not read",
        "p.yaml:6:13: telemetry.auth_log: warning: auth_events is not in learning_domains,"
        " so telemetry.auth_log is not read",
    ]
    assert doc("name: t\nlearning_domains: [system_logs]\ntelemetry: {logs: []}\n").warnings == []
