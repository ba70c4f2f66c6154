"""Add-bindings: personas layered on top of the chosen one, in a documented order, one
memo key per distinct set of layers, every layer named with the binding that brought it."""

from __future__ import annotations

from typing import Any

from mien.server.explain import binding_reasons, decision
from mien.server.resolve import (
    ActivationRef,
    BindingDoc,
    PersonaDoc,
    choose,
    compose_choice,
    matching,
    rank,
)


def persona(name: str, version: int = 1, **doc: Any) -> PersonaDoc:
    return PersonaDoc(name, version, f"sha256:{name}{version}", {"name": name, **doc})


def rule(name: str, threshold: float = 90.0) -> dict[str, Any]:
    return {
        "name": name,
        "when": f"metrics.cpu_percent > {threshold}",
        "then": [{"action": "notify", "message": name}],
    }


PERSONAS = {
    "company": persona("company", 2, adaptation_rules=[rule("base-watch")]),
    "web": persona(
        "web",
        3,
        extends="company",
        os_settings={"theme": "dark"},
        restricted_commands=["reboot"],
        adaptation_rules=[rule("cpu-high")],
    ),
    "db": persona("db"),
    "monitoring": persona(
        "monitoring",
        extends="company",
        os_settings={"theme": "light"},
        restricted_commands=["halt"],
        adaptation_rules=[rule("disk-full")],
    ),
    "audit": persona("audit", 4, environment_variables={"AUDIT": "1"}, os_settings={"theme": "x"}),
    "clash": persona("clash", 7, adaptation_rules=[rule("cpu-high", 10)]),
}


def bind(name: str, selector: dict[str, Any], target: str, **kw: Any) -> BindingDoc:
    return BindingDoc(
        name,
        selector,
        target,
        kw.get("override"),
        kw.get("priority", 0),
        mode=kw.get("mode", "replace"),
    )


BINDINGS = rank(
    [
        bind("web", {"role": "web"}, "web"),
        bind("db", {"role": "db"}, "db"),
        # Add-bindings: never choose, layer on top.
        bind("watch-all", {}, "monitoring", mode="add", priority=100),
        bind("audit-eu", {"region": "eu"}, "audit", mode="add"),
        bind("audit-eu-web", {"region": "eu", "role": "web"}, "audit", mode="add"),
        bind("clash-x", {"clash": "yes"}, "clash", mode="add"),
    ]
)
BY_NAME = {b.name: b for b in BINDINGS}


def effective(tags: dict[str, str], activation: ActivationRef | None = None):  # type: ignore[no-untyped-def]
    choice = choose(matching(BINDINGS, tags), activation, PERSONAS, None)
    return choice, compose_choice(choice, PERSONAS, BY_NAME, {})


def test_an_add_binding_never_chooses_and_needs_a_chosen_persona() -> None:
    choice, eff = effective({"region": "eu"})
    assert choice.persona is None and choice.additions == ()
    assert eff.data is None
    reasons = {
        b.name: r for b, _m, _u, r in binding_reasons(BINDINGS, {"region": "eu"}, choice, PERSONAS)
    }
    assert reasons["audit-eu"] == "adds to the chosen persona, and none was chosen"


def test_add_bindings_layer_their_personas_in_decision_order_reversed() -> None:
    choice, eff = effective({"role": "web", "region": "eu"})
    # audit is added once, by its more specific binding; the highest priority comes last.
    assert (choice.source, choice.persona) == ("binding", "web")
    assert choice.additions == ("audit-eu-web", "watch-all")
    assert eff.error is None and eff.data is not None
    # (Within an extends chain lists still replace: web and monitoring both drop
    # company's rule for their own.)
    assert [r["name"] for r in eff.data["adaptation_rules"]] == ["cpu-high", "disk-full"]
    assert eff.data["restricted_commands"] == ["reboot", "halt"]
    assert eff.data["os_settings"]["theme"] == "light"  # watch-all is applied last
    assert eff.data["environment_variables"] == {"AUDIT": "1"}
    assert eff.data["name"] == "web"
    layers = eff.resolved.layers  # type: ignore[union-attr]
    assert [
        (layer.kind, layer.label, by) for layer, by in zip(layers, eff.brought_by, strict=True)
    ] == [
        ("persona", "company v2", "web"),
        ("persona", "web v3", "web"),
        ("addition", "persona audit v4, added by binding audit-eu-web", "audit-eu-web"),
        (
            "addition",
            "persona monitoring v1 (extends company), added by binding watch-all",
            "watch-all",
        ),
    ]
    assert "personas added by audit-eu-web, watch-all" in decision(choice, eff)
    reasons = {
        b.name: (used, why)
        for b, _m, used, why in binding_reasons(
            BINDINGS, {"role": "web", "region": "eu"}, choice, PERSONAS
        )
    }
    assert reasons["audit-eu"] == (
        False,
        "persona 'audit' is already added by binding 'audit-eu-web'",
    )
    assert reasons["watch-all"] == (True, "adds persona 'monitoring' on top of 'web'")


def test_the_memo_key_includes_the_additions() -> None:
    plain, _ = effective({"role": "web"})
    eu, _ = effective({"role": "web", "region": "eu"})
    assert plain.persona == eu.persona and plain.overrides == eu.overrides
    assert plain.key != eu.key
    assert effective({"role": "web", "zone": "a"})[0].key == plain.key


def test_a_duplicate_rule_is_an_error_of_the_whole_desired_state_naming_both() -> None:
    choice, eff = effective({"role": "web", "clash": "yes"})
    assert eff.data is None and eff.hash is None and eff.error is not None
    assert "persona clash v7, added by binding clash-x" in eff.error
    assert "persona web v3" in eff.error and "'cpu-high'" in eff.error
    assert eff.error in decision(choice, eff)


def test_additions_apply_over_an_activation_and_a_default() -> None:
    choice, eff = effective({"role": "db"}, ActivationRef("a1", "web", 3))
    assert choice.source == "activation" and choice.additions == ("watch-all",)
    assert eff.brought_by == (None, None, "watch-all")
    personas = {**PERSONAS, "db": persona("db", default_persona=True)}
    choice = choose(matching(BINDINGS, {}), None, personas, "db")
    assert choice.source == "default" and choice.additions == ("watch-all",)


def test_adding_a_persona_of_the_chosen_chain_is_skipped_and_named() -> None:
    bindings = rank([*BINDINGS, bind("base-again", {"role": "web"}, "company", mode="add")])
    choice = choose(matching(bindings, {"role": "web"}), None, PERSONAS, None)
    eff = compose_choice(choice, PERSONAS, {b.name: b for b in bindings}, {})
    assert "base-again" in choice.additions and eff.error is None
    assert any(
        s.startswith("binding base-again: persona 'company' is already in the chain")
        for s in eff.skipped
    )
    assert [r["name"] for r in eff.data["adaptation_rules"]] == ["cpu-high", "disk-full"]  # type: ignore[index]


def test_an_add_binding_naming_the_chosen_persona_adds_only_its_override() -> None:
    bindings = rank(
        [
            bind("web", {"role": "web"}, "web"),
            bind("web-extra", {}, "web", mode="add", override={"os_settings": {"editor": "nano"}}),
        ]
    )
    choice = choose(matching(bindings, {"role": "web"}), None, PERSONAS, None)
    assert choice.bindings == ("web", "web-extra") and choice.additions == ()
    assert choice.overrides == ("web-extra",)
    eff = compose_choice(choice, PERSONAS, {b.name: b for b in bindings}, {})
    assert eff.data["os_settings"] == {"theme": "dark", "editor": "nano"}  # type: ignore[index]
    assert "selected by binding 'web'" in decision(choice, eff)


def test_an_add_binding_override_applies_to_its_own_persona() -> None:
    bindings = rank(
        [
            bind("web", {"role": "web"}, "web"),
            bind(
                "audit", {}, "audit", mode="add", override={"environment_variables": {"AUDIT": "2"}}
            ),
        ]
    )
    choice = choose(matching(bindings, {"role": "web"}), None, PERSONAS, None)
    eff = compose_choice(choice, PERSONAS, {b.name: b for b in bindings}, {})
    assert eff.data["environment_variables"] == {"AUDIT": "2"}  # type: ignore[index]


def test_a_rule_both_personas_inherit_from_one_baseline_is_kept_once() -> None:
    personas = {
        **PERSONAS,
        "company": persona(
            "company", 2, adaptation_rules=[rule("base-watch")], os_settings={"editor": "vi"}
        ),
        "web": persona("web", extends="company", os_settings={"editor": "nano"}),
        "watcher": persona("watcher", extends="company", os_settings={"theme": "light"}),
    }
    bindings = rank([bind("web", {}, "web"), bind("watcher", {}, "watcher", mode="add")])
    choice = choose(matching(bindings, {}), None, personas, None)
    eff = compose_choice(choice, personas, {b.name: b for b in bindings}, {})
    assert eff.error is None and eff.data is not None
    assert [r["name"] for r in eff.data["adaptation_rules"]] == ["base-watch"]
    # Settings overlay whole: what watcher inherits from company is applied over web too.
    assert eff.data["os_settings"] == {"editor": "vi", "theme": "light"}


def test_the_fleet_composes_once_per_distinct_set_of_layers() -> None:
    from mien.server.fleet import Fleet, Member

    fleet = Fleet(db=None)  # type: ignore[arg-type]  # the cache is pure; no query here
    fleet.personas = dict(PERSONAS)
    fleet.bindings = dict(BY_NAME)
    tags = [{"role": "web"}, {"role": "web", "region": "eu"}, {"role": "web", "region": "us"}]
    fleet.members = {f"i-{n}": Member(tags[n % 3], None) for n in range(30)}
    fleet._invalidate()
    answers = {iid: fleet.desired(iid) for iid in fleet.members}
    # web + monitoring (the us and plain web tags resolve alike) and web + audit + monitoring.
    assert fleet.resolutions == 2
    eu = answers["i-1"]
    assert eu is not None and eu.payload["added"] == ["audit-eu-web", "watch-all"]
    assert answers["i-4"] is eu  # the same bytes for the same desired state
    plain = answers["i-0"]
    assert plain is not None and plain.payload["added"] == ["watch-all"]
    assert plain.state != eu.state
