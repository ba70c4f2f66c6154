"""Resolution order, selector matching and override composition (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mien.server.explain import binding_reasons, decision, key_origins
from mien.server.resolve import (
    ActivationRef,
    BindingDoc,
    PersonaDoc,
    choose,
    compose_choice,
    default_persona,
    matching,
    rank,
    selector_matches,
)


def persona(name: str, version: int = 1, **doc: object) -> PersonaDoc:
    data = {"name": name, **doc}
    return PersonaDoc(
        name, version, f"sha256:{name}{version}", data, bool(doc.get("default_persona"))
    )


@pytest.mark.parametrize(
    ("selector", "tags", "matches"),
    [
        ({}, {}, True),
        ({}, {"a": "1"}, True),
        ({"env": "prod"}, {"env": "prod"}, True),
        ({"env": "prod"}, {"env": "dev"}, False),
        ({"env": "prod"}, {}, False),
        ({"env": "prod", "role": "web"}, {"env": "prod"}, False),
        ({"env": "prod", "role": "web"}, {"env": "prod", "role": "web", "x": "y"}, True),
        ({"env": "*"}, {"env": "anything"}, True),
        ({"env": "*"}, {}, False),
        ({"env": ["dev", "test"]}, {"env": "test"}, True),
        ({"env": ["dev", "test"]}, {"env": "prod"}, False),
    ],
)
def test_selector_matching(selector: dict, tags: dict, matches: bool) -> None:  # type: ignore[type-arg]
    assert selector_matches(selector, tags) is matches


def test_rank_by_priority_then_specificity_then_name() -> None:
    bindings = [
        BindingDoc("b", {"env": "prod"}, "p", None, 0),
        BindingDoc("a", {"env": "prod"}, "p", None, 0),
        BindingDoc("specific", {"env": "prod", "role": "web"}, "p", None, 0),
        BindingDoc("urgent", {}, "p", None, 5),
    ]
    assert [b.name for b in rank(bindings)] == ["urgent", "specific", "a", "b"]


PERSONAS = {
    "web": persona("web", environment_variables={"ROLE": "web"}, os_settings={"theme": "dark"}),
    "db": persona("db"),
    "fallback": persona("fallback", default_persona=True),
    "gone": PersonaDoc("gone", 1, "sha256:gone", {"name": "gone"}, deleted=True),
}
BINDINGS = rank(
    [
        BindingDoc("web", {"role": "web"}, "web", None, 0),
        BindingDoc(
            "prod-web",
            {"role": "web", "env": "prod"},
            "web",
            {"os_settings": {"theme": "light"}},
            10,
        ),
        BindingDoc(
            "eu", {"region": "eu"}, "web", {"environment_variables": {"TZ": "Europe/Paris"}}, 5
        ),
        BindingDoc("db", {"role": "db"}, "db", None, 1),
        BindingDoc("ghost", {"role": "ghost"}, "gone", None, 50),
    ]
)


def decide(tags: dict[str, str], activation: ActivationRef | None = None):  # type: ignore[no-untyped-def]
    matches = matching(BINDINGS, tags)
    return choose(matches, activation, PERSONAS, default_persona(PERSONAS))


@pytest.mark.parametrize(
    ("tags", "activation", "source", "chosen", "overrides"),
    [
        ({}, None, "default", "fallback", ()),
        ({"role": "web"}, None, "binding", "web", ()),
        ({"role": "web", "env": "prod"}, None, "binding", "web", ("prod-web",)),
        # Overrides compose lowest priority first, so the highest wins.
        (
            {"role": "web", "env": "prod", "region": "eu"},
            None,
            "binding",
            "web",
            ("eu", "prod-web"),
        ),
        ({"role": "db"}, None, "binding", "db", ()),
        # An activation wins over bindings; overrides of bindings naming that persona apply.
        ({"role": "db"}, ActivationRef("a1", "web", 1), "activation", "web", ()),
        ({"region": "eu"}, ActivationRef("a1", "web", 1), "activation", "web", ("eu",)),
        # A binding or activation naming a deleted persona is passed over.
        ({"role": "ghost"}, None, "default", "fallback", ()),
        ({"role": "db"}, ActivationRef("a1", "gone", 1), "binding", "db", ()),
    ],
)
def test_resolution_order(tags, activation, source, chosen, overrides) -> None:  # type: ignore[no-untyped-def]
    choice = decide(tags, activation)
    assert (choice.source, choice.persona, choice.overrides) == (source, chosen, overrides)


def test_nothing_desired_without_default() -> None:
    personas = {k: v for k, v in PERSONAS.items() if k != "fallback"}
    choice = choose(matching(BINDINGS, {}), None, personas, default_persona(personas))
    assert choice.source == "none" and choice.persona is None
    effective = compose_choice(choice, personas, {}, {})
    assert effective.data is None and effective.hash is None
    assert "nothing is desired" in decision(choice, effective)


def test_most_recently_marked_default_wins() -> None:
    older = PersonaDoc("a", 1, "h", {"name": "a"}, True, datetime(2024, 1, 1, tzinfo=UTC))
    newer = PersonaDoc("b", 1, "h", {"name": "b"}, True, datetime(2025, 1, 1, tzinfo=UTC))
    assert default_persona({"a": older, "b": newer}) == "b"
    assert default_persona({"a": older}) == "a"


def test_composition_applies_overrides_and_explains_them() -> None:
    choice = decide({"role": "web", "env": "prod", "region": "eu"})
    effective = compose_choice(choice, PERSONAS, {b.name: b for b in BINDINGS}, {})
    assert effective.data is not None and effective.error is None
    assert effective.data["os_settings"]["theme"] == "light"
    assert effective.data["environment_variables"] == {"ROLE": "web", "TZ": "Europe/Paris"}
    origins = key_origins(effective.resolved)  # type: ignore[arg-type]
    assert [label for label, _v, _d in origins["os_settings.theme"]] == [
        "web v1",
        "binding prod-web (priority 10)",
    ]
    reasons = {
        b.name: (matched, used)
        for b, matched, used, _ in binding_reasons(
            BINDINGS, {"role": "web", "env": "prod", "region": "eu"}, choice, PERSONAS
        )
    }
    assert reasons == {
        "ghost": (False, False),
        "prod-web": (True, True),
        "eu": (True, True),
        "db": (False, False),
        "web": (True, True),
    }
    assert "prod-web" in decision(choice, effective)


def test_an_override_that_no_longer_composes_is_skipped_not_fatal() -> None:
    bad = BindingDoc(
        "bad", {"role": "web"}, "web", {"behavioral_settings": {"logging_level": "loud"}}, 3
    )
    bindings = rank([*BINDINGS, bad])
    choice = choose(matching(bindings, {"role": "web", "env": "prod"}), None, PERSONAS, None)
    effective = compose_choice(choice, PERSONAS, {b.name: b for b in bindings}, {})
    assert effective.data is not None and effective.data["os_settings"]["theme"] == "light"
    assert len(effective.skipped) == 1 and effective.skipped[0].startswith("binding bad")


def test_extends_uses_latest_parents_and_pinned_leaf() -> None:
    personas = {
        "base": persona("base", 3, environment_variables={"A": "base-v3"}),
        "child": persona("child", 2, extends="base", os_settings={"theme": "v2"}),
    }
    old_child = persona("child", 1, extends="base", os_settings={"theme": "v1"})
    choice = choose((), ActivationRef("a", "child", 1), personas, None)
    effective = compose_choice(choice, personas, {}, {("child", 1): old_child})
    assert effective.version == 1 and effective.data is not None
    assert effective.data["os_settings"]["theme"] == "v1"
    assert effective.data["environment_variables"] == {"A": "base-v3"}
    missing_parent = {"child": personas["child"]}
    broken = compose_choice(
        choose((), ActivationRef("a", "child", 2), missing_parent, None), missing_parent, {}, {}
    )
    assert broken.data is None and broken.error and "base" in broken.error
