"""Validation of adaptation rules: actions, arguments, metrics, domains, names — each a
problem at FILE:LINE:COL of the offending node, the document refused."""

from __future__ import annotations

import pytest

from mien.spec.compose import resolve
from mien.spec.errors import SpecError
from tests.unit.spec.spec_helpers import doc, finder, problem, problems

HEAD = "learning_domains: [metrics]\n"


def rule(then: str, when: str = "metrics.cpu_percent > 1.0", extra: str = "") -> str:
    return f"{HEAD}adaptation_rules:\n  - when: {when}\n    then: [{then}]\n{extra}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            rule("{action: scael, cpu: 2}"),
            "p.yaml:4:21: adaptation_rules[0].then[0].action: unknown action 'scael'; "
            "did you mean 'scale'?",
        ),
        (
            rule("{action: scale, cpu: lots}"),
            "p.yaml:4:33: adaptation_rules[0].then[0].cpu: scale: 'lots' is not a CPU count: "
            "write e.g. 2, 0.5, '8 cores' or 500m",
        ),
        (
            rule("{action: switch_persona}"),
            "p.yaml:4:12: adaptation_rules[0].then[0].persona: switch_persona needs this argument",
        ),
        (
            rule("{action: firewall_block, from: data}"),
            "p.yaml:4:43: adaptation_rules[0].then[0].from: 'from: data' is the data of the "
            "source running the action; in a rule, name the source: 'from: data.SOURCE'",
        ),
        (
            rule("{action: firewall_block, from: data.feed}"),
            "p.yaml:4:43: adaptation_rules[0].then[0].from: no external data source is named "
            "'feed' (none defined)",
        ),
        (
            rule("{action: notify}", when="metrics.cpu_pct > 1.0"),
            "p.yaml:3:11: adaptation_rules[0].when: unknown metric 'cpu_pct'; did you mean "
            "'cpu_percent'?",
        ),
        (
            rule("{action: notify}", when="anomaly.api_rps > 3.0"),
            "p.yaml:3:11: adaptation_rules[0].when: reads 'api_rps', a metric of the learning "
            "domain 'api_calls', which learning_domains does not grant: it is never collected "
            "(add 'api_calls' to learning_domains)",
        ),
        (
            rule("{respond: nope}", extra="automated_responses: {yes: [{action: notify}]}\n"),
            "p.yaml:4:22: adaptation_rules[0].then[0].respond: response 'nope' is not defined "
            "under automated_responses (yes)",
        ),
        (
            rule("{action: notify}", extra="    serves: speed\n"),
            "p.yaml:5:13: adaptation_rules[0].serves: 'speed' is not a priority_metrics goal "
            "(none defined)",
        ),
        (
            rule(
                "{action: notify}", when="'metrics.cpu_percent > 1.0'\n    clear_when: metrics.x +"
            ),
            "p.yaml:4:28: adaptation_rules[0].clear_when: Syntax error: unexpected end",
        ),
    ],
)
def test_rule_problems_are_positioned(text: str, expected: str) -> None:
    assert problem(text) == expected


def test_a_misspelt_argument_is_named_and_the_missing_one_too() -> None:
    assert problems(rule("{action: restart_service, srvice: nginx}")) == [
        "p.yaml:4:12: adaptation_rules[0].then[0].service: restart_service needs this argument",
        "p.yaml:4:46: adaptation_rules[0].then[0].srvice: restart_service takes no argument "
        "'srvice' (it takes service)",
    ]


def test_unknown_metric_lists_the_names_when_nothing_is_close() -> None:
    message = problem(rule("{action: notify}", when="metrics.zzz > 1.0"))
    assert "unknown metric 'zzz' (metrics: cpu_percent, load_1m," in message
    assert "disk_percent:<mount>" in message


def test_duplicate_rule_names() -> None:
    text = f"""{HEAD}adaptation_rules:
  - {{name: a, when: 'true', then: [{{action: notify}}]}}
  - {{name: a, when: 'true', then: [{{action: notify}}]}}
"""
    assert problem(text) == (
        "p.yaml:4:12: adaptation_rules[1].name: rule 'a' is already defined (rule 1)"
    )


def test_names_with_a_free_part_and_every_domain() -> None:
    text = """\
learning_domains: [metrics, system_logs, network_traffic, api_calls, processes, file_access, auth_events]
adaptation_rules:
  - when: >-
      metrics["disk_percent:/var"] > 90.0 || metrics['log_errors_per_min:nginx'] > 1.0 ||
      metrics["connections:443"] > 9.0 || metrics.api_latency_p99_ms > 1.0 ||
      metrics["process_up:sshd"] == 0.0 || metrics["file_changes_per_min:etc"] > 0.0 ||
      anomaly.auth_failures_per_min > 3.0 || baseline.scan_findings > 0.0
    then: [{action: notify}]
"""
    assert doc(text).persona.adaptation_rules[0].when.startswith('metrics["disk_percent:/var"]')


def test_a_sketch_without_domains_or_responses_gets_warnings() -> None:
    d = doc("adaptation_rules:\n  - {when: 'metrics.cpu_percent > 1.0', then: [{respond: x}]}\n")
    assert [w.severity for w in d.warnings] == ["warning", "warning"]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        rule("{action: nope}, {action: scale}", when="metrics.a > 1.0 && metrics.b > 2.0")
    )
    assert [f.split(": ", 2)[1] for f in found] == [
        "adaptation_rules[0].when",
        "adaptation_rules[0].when",
        "adaptation_rules[0].then[0].action",
        "adaptation_rules[0].then[1]",
    ]


def test_worded_clear_when() -> None:
    text = f"""{HEAD}adaptation_rules:
  - when: CPU Load > 80%
    clear_when: CPU Load < 60% for 2 minutes
    then: [{{action: notify}}]
"""
    r = doc(text).persona.adaptation_rules[0]
    assert (r.when, r.clear_when, r.clear_for) == (
        "metrics.cpu_percent > 80.0",
        "metrics.cpu_percent < 60.0",
        r.clear_for,
    )
    assert r.clear_for is not None and r.clear_for.seconds == 120


PARENT = (
    "base.yaml",
    "name: base\nlearning_domains: [metrics]\n"
    "automated_responses: {cool: [{action: notify, message: hot}]}\n",
)


def test_a_child_may_use_what_its_parent_grants_and_defines() -> None:
    child = doc(
        "name: c\nextends: base\nadaptation_rules:\n"
        "  - {when: 'metrics.cpu_percent > 1.0', then: [{respond: cool}]}\n",
        "c.yaml",
    )
    resolved = resolve(child, finder(PARENT))
    assert resolved.persona.adaptation_rules[0].then[0].respond == "cool"


def test_the_composed_persona_is_checked_and_blamed_on_the_child() -> None:
    child = doc(
        "name: c\nextends: base\nadaptation_rules:\n"
        "  - {when: 'metrics.api_rps > 1.0', then: [{respond: warm}]}\n",
        "c.yaml",
    )
    with pytest.raises(SpecError) as info:
        resolve(child, finder(PARENT))
    assert [str(p).split(": ")[0] + ": " + str(p).split(": ")[1] for p in info.value.problems] == [
        "c.yaml:4:12: adaptation_rules[0].when",
        "c.yaml:4:54: adaptation_rules[0].then[0].respond",
    ]
