"""Additions: a persona layered on top of another joins its rules and accumulating lists
to the ones below (appended by name, united), the rest composes as an overlay (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from mien.spec.addition import Clash, join
from mien.spec.compose import compose
from mien.spec.errors import SpecError, format_path
from mien.spec.layers import Layer


def rule(name: str, threshold: float = 90.0) -> dict[str, Any]:
    return {
        "name": name,
        "when": f"metrics.cpu_percent > {threshold}",
        "then": [{"action": "notify", "message": name}],
    }


@pytest.mark.parametrize(
    ("key", "below", "above", "value", "added", "clashes"),
    [
        # Named lists: appended by name, below first.
        ("adaptation_rules", [rule("a")], [rule("b")], [rule("a"), rule("b")], [1], []),
        ("adaptation_rules", None, [rule("b")], [rule("b")], [0], []),
        # The same name with another definition clashes; the identical rule is kept once.
        ("adaptation_rules", [rule("a")], [rule("a", 50)], [rule("a")], [], [Clash(0, 0, "a")]),
        ("adaptation_rules", [rule("a")], [rule("a")], [rule("a")], [], []),
        # Unnamed rules cannot clash.
        (
            "adaptation_rules",
            [{"when": "true"}],
            [{"when": "true"}],
            [{"when": "true"}, {"when": "true"}],
            [1],
            [],
        ),
        (
            "external_data_sources",
            [{"name": "feed", "url": "https://a"}],
            [{"name": "feed", "url": "https://b"}],
            [{"name": "feed", "url": "https://a"}],
            [],
            [Clash(0, 0, "feed")],
        ),
        # Sets: united without repeats, below first.
        ("restricted_commands", ["reboot", "shutdown"], ["mkfs*", "reboot"],
         ["reboot", "shutdown", "mkfs*"], [2], []),
        ("learning_domains", ["metrics"], ["processes"], ["metrics", "processes"], [1], []),
        ("required_applications", [{"name": "nginx"}], [{"name": "nginx"}, {"name": "jq"}],
         [{"name": "nginx"}, {"name": "jq"}], [1], []),
    ],
)  # fmt: skip
def test_join(key, below, above, value, added, clashes) -> None:  # type: ignore[no-untyped-def]
    joined = join(key, below, above)
    assert (joined.value, joined.added, joined.clashes) == (value, added, clashes)


BASE = Layer(
    "persona",
    "web v3",
    {
        "name": "web",
        "os_settings": {"theme": "dark", "editor": "vim"},
        "environment_variables": {"ROLE": "web", "TIER": "front"},
        "restricted_commands": ["reboot"],
        "adaptation_rules": [rule("cpu-high")],
        "required_applications": [{"name": "nginx"}],
    },
    persona="web",
)


def addition(name: str, label: str, **data: Any) -> Layer:
    return Layer("addition", label, {"name": name, **data}, persona=name)


def test_an_addition_appends_rules_unites_commands_and_overlays_settings() -> None:
    monitoring = addition(
        "monitoring",
        "persona monitoring v1, added by binding watch",
        os_settings={"theme": "light"},
        environment_variables={"AGENT": "on"},
        restricted_commands=["reboot", "halt"],
        adaptation_rules=[rule("disk-full")],
        required_applications=[{"name": "node-exporter"}],
        description="not the effective persona's own",
    )
    resolved = compose([BASE], [monitoring])
    data = resolved.data
    assert [r["name"] for r in data["adaptation_rules"]] == ["cpu-high", "disk-full"]
    assert data["restricted_commands"] == ["reboot", "halt"]
    assert [p["name"] for p in data["required_applications"]] == ["nginx", "node-exporter"]
    # Settings compose as overlays: maps merge, the addition wins where both set a key.
    assert data["os_settings"] == {"theme": "light", "editor": "vim"}
    assert data["environment_variables"] == {"ROLE": "web", "TIER": "front", "AGENT": "on"}
    # One persona: the chosen one's identity, not the added one's.
    assert data["name"] == "web" and "description" not in data
    # The trail says which layer brought each appended rule and command.
    _value, origins = resolved.explain(("adaptation_rules",))
    assert [o.layer.label for o in origins] == ["web v3", monitoring.label]
    assert resolved.explain(("restricted_commands", 1))[1][-1].layer is monitoring


def test_a_duplicate_rule_name_is_refused_naming_both_layers() -> None:
    clash = addition(
        "ops", "persona ops v2, added by binding ops-all", adaptation_rules=[rule("cpu-high", 50)]
    )
    with pytest.raises(SpecError) as caught:
        compose([BASE], [clash])
    [problem] = caught.value.errors
    text = str(problem)
    assert "persona ops v2, added by binding ops-all" in text
    assert "persona web v3" in text and "'cpu-high'" in text
    assert format_path(problem.path) == "adaptation_rules[0]"


def test_a_rule_appended_by_an_earlier_addition_is_named_as_its_source() -> None:
    first = addition("a", "persona a v1, added by binding x", adaptation_rules=[rule("net")])
    second = addition("b", "persona b v1, added by binding y", adaptation_rules=[rule("net", 1)])
    with pytest.raises(SpecError) as caught:
        compose([BASE], [first, second])
    text = str(caught.value.errors[0])
    assert text.startswith("persona b v1, added by binding y")
    assert "already defined by persona a v1, added by binding x" in text


def test_later_additions_win_settings_and_append_after_earlier_ones() -> None:
    first = addition(
        "a",
        "a",
        os_settings={"theme": "a"},
        adaptation_rules=[rule("ra")],
        restricted_commands=["x"],
    )
    second = addition(
        "b",
        "b",
        os_settings={"theme": "b"},
        adaptation_rules=[rule("rb")],
        restricted_commands=["y"],
    )
    data = compose([BASE], [first, second]).data
    assert data["os_settings"]["theme"] == "b"
    assert [r["name"] for r in data["adaptation_rules"]] == ["cpu-high", "ra", "rb"]
    assert data["restricted_commands"] == ["reboot", "x", "y"]
    assert compose([BASE], [second, first]).data["os_settings"]["theme"] == "a"


def test_an_override_replaces_lists_but_an_addition_joins_them() -> None:
    override = Layer("binding", "binding quiet", {"restricted_commands": ["halt"]})
    added = addition("a", "a", restricted_commands=["reboot", "poweroff"])
    assert compose([BASE], [override]).data["restricted_commands"] == ["halt"]
    assert compose([BASE], [override, added]).data["restricted_commands"] == [
        "halt",
        "reboot",
        "poweroff",
    ]


def test_an_added_command_the_base_overrides_is_refused_in_the_addition() -> None:
    base = Layer(
        "persona", "dev v1", {"name": "dev", "command_overrides": {"rm": "trash"}}, persona="dev"
    )
    added = addition("locked-down", "persona locked-down v1, added by binding lock",
                     restricted_commands=["rm"])  # fmt: skip
    with pytest.raises(SpecError) as caught:
        compose([base], [added])
    assert "both overridden and restricted" in str(caught.value)
