"""Intents: cooldown per target, trust refusals, priority suppression, data sources."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mien.rules import Inputs, RuleSet, RuleState, source_data
from mien.rules.actions import ACTIONS
from mien.rules.trust import allowed
from mien.spec.models import Persona


def compile_(**body: Any) -> RuleSet:
    return RuleSet.compile(Persona.model_validate({"name": "p", **body}))


def run(rs: RuleSet, samples: list[tuple[float, dict[str, float]]], **kw: Any) -> list[Any]:
    states: dict[str, RuleState] = {}
    fired = []
    for now, metrics in samples:
        step = rs.step(Inputs(metrics=metrics, now=now, **kw), states)
        states = step.states
        fired += step.fire
    return fired


def setting(key: str, value: Any) -> dict[str, Any]:
    return {"action": "set_setting", "key": key, "value": value}


def test_cooldown_stops_a_refire_on_the_same_target_only() -> None:
    rs = compile_(
        trust_levels={"file_system_modification": "low"},
        automated_responses={"both": [setting("os_settings.a", 1)]},
        adaptation_rules=[
            {
                "name": "r",
                "when": "metrics.cpu_percent > 40.0",
                "cooldown": "1m",
                "then": [setting("os_settings.a", 1)],
            },
        ],
    )
    hot, cold = {"cpu_percent": 50.0}, {"cpu_percent": 10.0}
    fired = run(rs, [(0, hot), (1, cold), (2, hot), (61, cold), (62, hot)])
    assert [(f.at, f.runs, f.cooldown_until) for f in fired] == [
        (0, True, None),
        (2, False, 60.0),  # fired again within the cooldown: not run
        (62, True, None),
    ]
    assert fired[1].verdict == "cooling down until 60"


def test_cooldown_is_per_target() -> None:
    rs = compile_(
        trust_levels={"file_system_modification": "low"},
        adaptation_rules=[
            {
                "name": "r",
                "when": "metrics.cpu_percent > 40.0",
                "cooldown": "1m",
                "then": [setting("os_settings.a", 1)],
            }
        ],
    )
    states = {"r": RuleState(cooldown={"set_setting:os_settings.b": 1000.0})}
    step = rs.step(Inputs(metrics={"cpu_percent": 50.0}, now=0), states)
    assert step.fire[0].runs  # a cooldown on another target does not stop this one
    assert step.states["r"].cooldown == {
        "set_setting:os_settings.b": 1000.0,
        "set_setting:os_settings.a": 60.0,
    }


def test_trust_refusal() -> None:
    rs = compile_(
        trust_levels={"process_control": "low", "persona_change": "high"},
        adaptation_rules=[
            {
                "name": "r",
                "when": "metrics.cpu_percent > 40.0",
                "cooldown": "1h",
                "then": [
                    {"action": "run", "command": "reboot"},
                    {"action": "restart_service", "service": "nginx"},
                    {"action": "firewall_block", "addresses": ["192.0.2.1"]},
                    {"action": "notify", "message": "hot"},
                ],
            }
        ],
    )
    step = rs.step(Inputs(metrics={"cpu_percent": 50.0}, now=0), {})
    verdicts = {i.name: (i.allowed, i.refused, i.risk, i.needed) for i in step.fire}
    assert verdicts == {
        "run": (
            False,
            "needs process_control trust high, the persona grants low",
            "process_control",
            "high",
        ),
        "restart_service": (True, None, "process_control", "low"),
        "firewall_block": (
            False,
            "needs network_access trust low, the persona grants none",
            "network_access",
            "low",
        ),
        "notify": (True, None, None, "none"),
    }
    # A refused action does not start a cooldown.
    assert set(step.states["r"].cooldown) == {"restart_service:nginx", "notify:hot"}


def test_trust_levels_order() -> None:
    assert allowed({"network_access": "medium"}, "network_access", "low")
    assert allowed({"network_access": "medium"}, "network_access", "medium")
    assert not allowed({"network_access": "medium"}, "network_access", "high")
    assert not allowed({}, "network_access", "low")
    assert allowed({}, "network_access", "none")


def test_priority_suppression_of_opposite_settings() -> None:
    rs = compile_(
        priority_metrics={"performance": 0.7, "cost": 0.2},
        trust_levels={"file_system_modification": "low", "resource_scaling": "high"},
        adaptation_rules=[
            {
                "name": "save",
                "serves": "cost",
                "when": "metrics.cpu_percent > 10.0",
                "then": [setting("os_settings.power_profile", "power-saver")],
            },
            {
                "name": "speed",
                "when": "metrics.cpu_percent > 20.0 && priority.performance > priority.cost",
                "then": [setting("os_settings.power_profile", "performance")],
            },
            {
                "name": "same",
                "serves": "cost",
                "when": "metrics.cpu_percent > 10.0",
                "then": [setting("os_settings.power_profile", "performance")],
            },
        ],
    )
    # Both fire in one step: the heavier goal (performance 0.7) wins.
    step = rs.step(Inputs(metrics={"cpu_percent": 50.0}, now=0), {})
    by = {i.rule: i.suppressed_by for i in step.fire}
    assert by == {"save": "speed", "speed": None, "same": None}
    # `save` already firing, `speed` fires later: `speed` still wins; `save` firing
    # again later is suppressed by `speed`, which is firing.
    states = rs.step(Inputs(metrics={"cpu_percent": 15.0}, now=0), {}).states
    assert states["save"].phase == "firing"
    step = rs.step(Inputs(metrics={"cpu_percent": 50.0}, now=1), states)
    assert {i.rule: i.suppressed_by for i in step.fire} == {"speed": None}


def test_limit_and_scale_of_the_same_resource_conflict() -> None:
    rs = compile_(
        priority_metrics={"performance": 0.3, "cost": 0.9},
        trust_levels={"resource_scaling": "high"},
        adaptation_rules=[
            {
                "name": "grow",
                "serves": "performance",
                "when": "true",
                "then": [{"action": "scale", "cpu": "+1"}],
            },
            {
                "name": "cap",
                "serves": "cost",
                "when": "true",
                "then": [{"action": "limit", "exe": "/usr/bin/x", "cpu": 50}],
            },
            {
                "name": "cap2",
                "serves": "performance",
                "when": "true",
                "then": [{"action": "limit", "exe": "/usr/bin/y", "cpu": 50}],
            },
        ],
    )
    step = rs.step(Inputs(now=0), {})
    # Limits of different executables do not contend; scaling up against a cap does.
    assert {i.rule: i.suppressed_by for i in step.fire} == {
        "grow": "cap",
        "cap": None,
        "cap2": None,
    }


def test_respond_expands_a_named_response() -> None:
    rs = compile_(
        trust_levels={"file_system_modification": "low"},
        automated_responses={
            "cdn": [setting("application_settings.cdn_cache", True), {"respond": "tell"}],
            "tell": [{"action": "notify", "message": "cdn on"}],
        },
        adaptation_rules=[{"name": "r", "when": "true", "then": [{"respond": "cdn"}]}],
    )
    step = rs.step(Inputs(now=0), {})
    assert [(i.name, i.via, i.runs) for i in step.fire] == [
        ("set_setting", "cdn", True),
        ("notify", "tell", True),
    ]


def test_data_source_feeds_firewall_block_and_refires_on_new_data() -> None:
    rs = compile_(
        trust_levels={"network_access": "low"},
        external_data_sources=[
            {
                "name": "feed",
                "url": "https://example.org/ips",
                "then": [{"action": "firewall_block", "from": "data"}],
            },
            {
                "name": "fc",
                "url": "https://example.org/f",
                "parse": "json",
                "when": "data.rps > 100.0",
                "then": [{"action": "notify", "message": "busy"}],
            },
        ],
    )
    assert rs.names() == ["source:feed", "source:fc"]
    step = rs.step(Inputs(now=0), {})
    assert step.fire == [] and step.states["source:feed"].truth == "unknown"
    data = {
        "feed": source_data(["192.0.2.1", "192.0.2.2"], age=0, changed_at=5),
        "fc": source_data({"rps": 150.0}, age=3, changed_at=1),
    }
    step = rs.step(Inputs(now=5, data=data), step.states)
    assert [(i.rule, i.params.get("addresses")) for i in step.fire] == [
        ("source:feed", ["192.0.2.1", "192.0.2.2"]),
        ("source:fc", None),
    ]
    same = rs.step(Inputs(now=6, data=data), step.states)
    assert same.fire == []
    data["feed"] = source_data(["192.0.2.9"], age=0, changed_at=7)
    step = rs.step(Inputs(now=7, data=data), same.states)
    assert [i.params["addresses"] for i in step.fire] == [["192.0.2.9"]]


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("set_setting", {"key": "nonsense", "value": 1}, "not a persona key path"),
        ("set_setting", {"key": "os_settings.x"}, "exactly one of 'value' or 'from'"),
        ("switch_persona", {}, "Field required"),
        ("run", {"command": ""}, "at least 1 character"),
        ("restart_service", {"service": "a b"}, "should match pattern"),
        ("firewall_block", {"addresses": ["not-an-ip"]}, "not an IP address"),
        ("firewall_block", {"from": "events.x"}, "'from' names the data of a source"),
        ("limit", {"exe": "/usr/bin/x"}, "give 'cpu'"),
        ("limit", {"exe": "relative", "cpu": 5}, "absolute"),
        ("scale", {"cpu": "lots"}, "not a CPU count"),
        ("notify", {"message": "x", "extra": 1}, "Extra inputs are not permitted"),
    ],
)
def test_action_params_are_validated(name: str, params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        ACTIONS[name].params.model_validate(params)
    assert fragment in str(info.value)


def test_action_registry() -> None:
    assert set(ACTIONS) == {
        "set_setting",
        "switch_persona",
        "run",
        "restart_service",
        "firewall_block",
        "limit",
        "scale",
        "notify",
    }
    ok = {
        "set_setting": {"key": "os_settings.power_profile", "value": "performance"},
        "switch_persona": {"persona": "kiosk"},
        "run": {"command": "true"},
        "restart_service": {"service": "nginx.service"},
        "firewall_block": {"from": "data.feed", "timeout": "10m"},
        "limit": {"exe": "/usr/bin/stress", "cpu": 50, "memory": "1GiB"},
        "scale": {"cpu": 16, "memory": "-1"},
        "notify": {"message": "hello"},
    }
    for name, params in ok.items():
        ACTIONS[name].params.model_validate(params)
