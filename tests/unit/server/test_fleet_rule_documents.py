"""Fleet rule documents: a valid one read into the rule the engine steps; every problem
named with its line, column and field; the actions' shapes; what the worst are."""

from __future__ import annotations

import pytest

from mien.server.orchestrator.actions import worst
from mien.server.orchestrator.documents import parse
from mien.spec.errors import SpecError

GOOD = b"""\
name: web-hot
selector: {role: [web, api]}
when: avg.cpu_percent > 70 && count >= 2
for: 1m
clear_when: avg.cpu_percent < 50
clear_for: 30s
cooldown: 10m
then:
  - bind: {persona: burst}
  - set_tags: {tier: hot}
  - remove_tags: [cold]
  - activate: {persona: burst, worst: 2, by: cpu_percent}
  - call_provider: {provider: hooks, kind: resize, params: {cpus: 8}, worst: 1, by: load_1m}
"""


def problems(raw: bytes) -> list[str]:
    with pytest.raises(SpecError) as err:
        parse(raw, "r.yaml")
    return [str(p) for p in err.value.problems]


def test_a_valid_document_becomes_the_rule() -> None:
    got = parse(GOOD, "r.yaml")
    src = got.doc.source()
    assert (src.name, src.for_s, src.clear_for_s, src.cooldown_s) == ("web-hot", 60, 30, 600)
    assert [a.kind for a in got.doc.then] == [
        "bind",
        "set_tags",
        "remove_tags",
        "activate",
        "call_provider",
    ]
    assert got.doc.fresh.seconds == 120
    assert got.data["selector"] == {"role": ["web", "api"]}


def test_a_condition_that_does_not_compile_is_refused_at_its_line() -> None:
    raw = GOOD.replace(b"clear_when: avg.cpu_percent < 50", b"clear_when: avg.cpu_percent <")
    assert problems(raw) == ["r.yaml:5:30: clear_when: Syntax error: unexpected end"]


def test_a_multi_line_condition_points_into_the_block() -> None:
    raw = b"name: a\nwhen: |\n  avg.cpu_percent > 1.0 &&\n  metrics.cpu_percent > 2.0\nthen: [{unbind: {binding: b}}]\n"
    (only,) = problems(raw)
    assert only.startswith("r.yaml:4:") and "undeclared reference to 'metrics" in only
    assert "firing_fraction" in only  # the variables there are


def test_every_problem_with_its_field() -> None:
    raw = b"""\
name: a
selectr: {}
when: size(avg) > 1
then:
  - bind: {persona: x}
    set_tags: {a: b}
  - activate: {persona: x, worst: 0, by: cpu}
  - call_provider: {provider: p, worst: 2}
"""
    got = problems(raw)
    assert any(
        p.startswith("r.yaml:2:1: selectr: unknown field; did you mean 'selector'") for p in got
    )
    assert any(p.startswith("r.yaml:3:") and "by name" in p for p in got)
    assert any(p.startswith("r.yaml:5:") and "exactly one of" in p for p in got)
    assert any("then[1].activate.worst" in p for p in got)
    assert any("then[2].call_provider" in p and "go together" in p for p in got)


def test_not_a_mapping_and_too_large() -> None:
    assert "mapping" in problems(b"- a\n- b\n")[0]
    assert "larger than" in problems(b"name: a\n" + b"#" * 70_000)[0]


def test_worst_by_value_then_id() -> None:
    values = {"a": 5.0, "b": 9.0, "c": 9.0, "d": 1.0, "x": 100.0}
    assert worst(["a", "b", "c", "d"], values, 2) == ["b", "c"]
    assert worst(["a", "b", "c", "d", "e"], values, 2, "lowest") == ["d", "a"]
    assert worst(["e"], values, 1) == []  # no value: not a candidate
