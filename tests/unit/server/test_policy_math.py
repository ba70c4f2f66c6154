"""Applying a fleet policy (pure, no I/O): which entries match, the lowest cap wins, what
the agent is handed, who may switch, and which reported settings break a lock."""

from __future__ import annotations

from mien.server.compliance import locked_changes
from mien.server.policy import cap, cap_levels, limits, switch_refusal, trust_entries
from mien.server.resolve import Choice, Effective
from mien.spec.canonical import content_hash
from mien.spec.policy import Policy, parse_policy

POLICY = parse_policy(
    """
trust:
  - selector: {env: prod}
    max: {process_control: none, resource_scaling: medium}
  - selector: {env: [prod, staging], role: '*'}
    max: {resource_scaling: low, network_access: high}
  - max: {persona_change: low}
switching:
  - selector: {env: prod}
    users: [alice]
    groups: [oncall]
    personas: [web]
  - selector: {env: dev}
    users: ['*']
    personas: ['*']
"""
).policy


def test_selectors_pick_entries_like_bindings() -> None:
    assert trust_entries(POLICY, {"env": "prod"}) == (0, 2)
    assert trust_entries(POLICY, {"env": "prod", "role": "db"}) == (0, 1, 2)
    assert trust_entries(POLICY, {"env": "staging", "role": "web"}) == (1, 2)
    assert trust_entries(POLICY, {"env": "staging"}) == (2,)  # role '*' needs the tag
    assert trust_entries(POLICY, {}) == (2,)  # an empty selector matches every instance
    assert trust_entries(None, {"env": "prod"}) == ()


def test_the_lowest_cap_of_all_matching_entries_wins() -> None:
    caps = limits(POLICY, (0, 1, 2))
    assert caps == {
        "process_control": ("none", 0),
        "resource_scaling": ("low", 1),  # medium (0) and low (1): low
        "network_access": ("high", 1),
        "persona_change": ("low", 2),
    }
    levels, lowered = cap_levels(
        {
            "process_control": "high",
            "resource_scaling": "medium",
            "network_access": "medium",  # under its cap: kept
            "persona_change": "low",  # equal to its cap: kept
            "custom_thing": "high",  # not a risk category: no cap names it
        },
        caps,
        POLICY,
    )
    assert levels == {
        "process_control": "none",
        "resource_scaling": "low",
        "network_access": "medium",
        "persona_change": "low",
        "custom_thing": "high",
    }
    assert [(c.risk, c.granted, c.allowed, c.entry) for c in lowered] == [
        ("process_control", "high", "none", "trust[0] (env=prod)"),
        ("resource_scaling", "medium", "low", "trust[1] (env=prod|staging,role=*)"),
    ]


def effective(data: dict[str, object]) -> Effective:
    return Effective(Choice("default", "web"), 1, content_hash(data), data)


def test_the_capped_document_has_its_own_hash_and_an_unlisted_risk_stays_unlisted() -> None:
    data: dict[str, object] = {"name": "web", "trust_levels": {"process_control": "low"}}
    original = effective(data)
    capped, lowered = cap(original, POLICY, trust_entries(POLICY, {"env": "prod"}))
    assert capped.data == {"name": "web", "trust_levels": {"process_control": "none"}}
    assert capped.hash == content_hash(capped.data) != original.hash
    assert [c.risk for c in lowered] == ["process_control"]
    assert data["trust_levels"] == {"process_control": "low"}  # the memoised original is intact
    # Nothing lowered: the very same answer (and hash) as without a policy.
    same, none = cap(original, POLICY, trust_entries(POLICY, {"env": "dev"}))
    assert same is original and none == ()
    bare = effective({"name": "web"})
    assert cap(bare, POLICY, (0, 1, 2)) == (bare, ())


def test_switching_needs_an_entry_for_the_instance_the_person_and_the_persona() -> None:
    prod = {"env": "prod"}
    assert switch_refusal(POLICY, prod, "alice", [], "web") is None
    assert switch_refusal(POLICY, prod, "carol", ["oncall"], "web") is None
    refused = switch_refusal(POLICY, prod, "bob", ["dev"], "web")
    assert refused is not None and "does not let bob switch" in refused
    assert switch_refusal(POLICY, prod, "alice", [], "db") is not None
    assert switch_refusal(POLICY, {"env": "dev"}, "anyone", [], "anything") is None
    uncovered = switch_refusal(POLICY, {"env": "qa"}, "alice", [], "web")
    assert uncovered is not None and "covers this instance" in uncovered
    # No switching list (or no policy): the persona's own access_controls decide alone.
    assert switch_refusal(Policy(), prod, "bob", [], "web") is None
    assert switch_refusal(None, prod, "bob", [], "web") is None
    # An empty list is a list: nobody may switch.
    assert switch_refusal(Policy(switching=[]), prod, "alice", [], "web") is not None


def test_a_locked_key_changed_by_a_person() -> None:
    reported = [
        {"setting": "os_settings.terminal_shell", "status": "stored", "reason": "user-choice"},
        {"setting": "os_settings.theme", "status": "stored", "reason": "user-choice"},
        {"setting": "os_settings.timezone", "status": "applied", "reason": "in-effect"},
    ]
    assert locked_changes(reported, ["os_settings.terminal_shell"]) == [
        "os_settings.terminal_shell"
    ]
    assert locked_changes(reported, ["os_settings"]) == [
        "os_settings.terminal_shell",
        "os_settings.theme",
    ]
    assert locked_changes(reported, ["os_settings.time"]) == []  # a prefix is not a parent
    assert locked_changes(reported, []) == [] and locked_changes(None, ["x"]) == []
