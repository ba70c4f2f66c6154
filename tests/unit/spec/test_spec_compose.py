"""Composition: extends chains, overlays, null deletes, locks, customizations, and explain."""

from __future__ import annotations

import pytest

from mien.spec.compose import MAX_CHAIN, compose, customization_layer, resolve
from mien.spec.errors import PersonaNotFound, SpecError
from mien.spec.keys import format_key, locking, parse_key
from mien.spec.layers import DELETED, Layer
from tests.unit.spec.spec_helpers import doc, finder

BASE = (
    "base.yaml",
    """\
name: base
display_name: Acme baseline
description: the company baseline
default_persona: true
locked: [os_settings.theme, restricted_commands]
labels: {company: acme, tier: "1"}
os_settings: {theme: dark, editor: vim}
environment_variables: {TZ: Etc/UTC, PROXY: http://proxy:3128}
restricted_commands: [reboot, halt]
""",
)
CHILD = """\
name: dev
extends: base
labels: {tier: null, team: platform}
os_settings: {editor: code}
environment_variables: {EDITOR: code}
restricted_commands: [reboot]
"""


def resolved_child(*overlays: str, customizations: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    layers = [doc(text, f"overlay{i}.yaml", overlay=True) for i, text in enumerate(overlays)]
    return resolve(doc(CHILD, "dev.yaml"), finder(BASE), layers, customizations)


def test_extends_merges_maps_by_key_and_replaces_lists() -> None:
    r = resolved_child()
    assert r.data == {
        "name": "dev",
        "labels": {"company": "acme", "team": "platform"},
        "locked": ["os_settings.theme", "restricted_commands"],
        "os_settings": {"theme": "dark", "editor": "code"},
        "environment_variables": {"TZ": "Etc/UTC", "PROXY": "http://proxy:3128", "EDITOR": "code"},
        "restricted_commands": ["reboot"],
    }
    assert r.chain == ["base", "dev"]
    assert r.locked_by == {"os_settings.theme": "base", "restricted_commands": "base"}


def test_identity_is_not_inherited() -> None:
    """name, extends, default_persona, display_name and description belong to the parent."""
    r = resolved_child()
    for key in ("extends", "default_persona", "display_name", "description"):
        assert key not in r.data
    assert r.name == "dev"


def test_overlays_apply_in_order_later_wins() -> None:
    r = resolved_child("os_settings: {editor: nano}\n", "os_settings: {editor: emacs}\n")
    assert r.data["os_settings"] == {"theme": "dark", "editor": "emacs"}
    r = resolved_child("os_settings: {editor: emacs}\n", "os_settings: {editor: nano}\n")
    assert r.data["os_settings"]["editor"] == "nano"


def test_null_deletes_a_key_a_map_or_a_list() -> None:
    r = resolved_child(
        "environment_variables: {PROXY: null}\nos_settings: null\nrestricted_commands: null\n"
    )
    assert r.data["environment_variables"] == {"TZ": "Etc/UTC", "EDITOR": "code"}
    assert "os_settings" not in r.data
    assert "restricted_commands" not in r.data


def test_null_for_a_key_nobody_set_is_harmless() -> None:
    assert resolved_child("labels: {nobody: null}\n").data == resolved_child().data


def test_empty_map_in_an_overlay_changes_nothing() -> None:
    assert resolved_child("os_settings: {}\n").data == resolved_child().data


def test_customizations_apply_except_locked_keys() -> None:
    r = resolved_child(
        customizations={
            "os_settings.editor": "emacs",
            "os_settings.theme": "light",
            "restricted_commands": [],
            "environment_variables.EDITOR": "emacs",
        }
    )
    assert r.data["os_settings"] == {"theme": "dark", "editor": "emacs"}
    assert r.data["environment_variables"]["EDITOR"] == "emacs"
    assert r.data["restricted_commands"] == ["reboot"]
    assert r.skipped == [
        ("os_settings.theme", "locked by persona 'base' (os_settings.theme)"),
        ("restricted_commands", "locked by persona 'base' (restricted_commands)"),
    ]


@pytest.mark.parametrize(
    ("key", "locked"),
    [
        (("os_settings", "theme"), True),
        (("os_settings",), True),  # would replace the locked key
        (("os_settings", "theme", "variant"), True),
        (("os_settings", "editor"), False),
        (("restricted_commands",), True),
        (("labels", "team"), False),
    ],
)
def test_locking(key: tuple[str, ...], locked: bool) -> None:
    locks = {"os_settings.theme": "base", "restricted_commands": "base"}
    assert (locking(key, locks) is not None) == locked


def test_a_bad_customization_names_its_key() -> None:
    with pytest.raises(SpecError) as info:
        resolved_child(customizations={"behavioral_settings.logging_level": "loud"})
    assert [str(p) for p in info.value.problems] == [
        "customization: behavioral_settings.logging_level: must be one of: 'debug', 'info', "
        "'warning', 'error' or 'critical'"
    ]


def test_a_bad_value_is_blamed_on_the_layer_that_set_it() -> None:
    """Each document is valid alone; together they are not: the overlay is named."""
    with pytest.raises(SpecError) as info:
        resolved_child("command_overrides: {halt: /bin/true}\nrestricted_commands: [halt]\n")
    assert [str(p) for p in info.value.problems] == [
        "overlay0.yaml:1:1: (document): halt: a command cannot be both overridden and restricted"
    ]


def test_missing_parent_names_the_chain() -> None:
    find = finder(("mid.yaml", "name: mid\nextends: gone\n"))
    with pytest.raises(PersonaNotFound) as info:
        resolve(doc("name: leaf\nextends: mid\n", "leaf.yaml"), find)
    assert [str(p) for p in info.value.problems] == [
        "mid.yaml:2:10: extends: persona 'gone' not found (extends chain: leaf → mid → gone)"
    ]


def test_missing_parent_without_a_catalog() -> None:
    with pytest.raises(PersonaNotFound) as info:
        resolve(doc("name: leaf\nextends: base\n", "leaf.yaml"))
    assert str(info.value) == (
        "leaf.yaml:2:10: extends: persona 'base' not found (extends chain: leaf → base)"
    )


def test_cycle_names_the_chain() -> None:
    find = finder(("b.yaml", "name: b\nextends: c\n"), ("c.yaml", "name: c\nextends: a\n"))
    with pytest.raises(SpecError) as info:
        resolve(doc("name: a\nextends: b\n", "a.yaml"), find)
    assert str(info.value) == "c.yaml:2:10: extends: extends cycle: a → b → c → a"


def test_self_cycle() -> None:
    with pytest.raises(SpecError) as info:
        resolve(doc("name: a\nextends: a\n", "a.yaml"), finder())
    assert str(info.value) == "a.yaml:2:10: extends: extends cycle: a → a"


def test_chain_length_is_limited() -> None:
    texts = [(f"p{i}.yaml", f"name: p{i}\nextends: p{i + 1}\n") for i in range(1, MAX_CHAIN + 2)]
    with pytest.raises(SpecError) as info:
        resolve(doc("name: p0\nextends: p1\n", "p0.yaml"), finder(*texts))
    assert str(info.value).endswith(f"extends: extends chain longer than {MAX_CHAIN}")


def test_three_level_chain_order() -> None:
    find = finder(
        ("a.yaml", "name: a\nlabels: {x: a, y: a, z: a}\n"),
        ("b.yaml", "name: b\nextends: a\nlabels: {y: b, z: b}\n"),
    )
    r = resolve(doc("name: c\nextends: b\nlabels: {z: c}\n", "c.yaml"), find)
    assert r.chain == ["a", "b", "c"]
    assert r.data["labels"] == {"x": "a", "y": "b", "z": "c"}


def test_seed_spellings_compose_with_canonical_ones() -> None:
    find = finder(("base.yaml", "name: base\nBaseConfiguration: {CPU: 2, Memory: 4 GB}\n"))
    r = resolve(doc("extends: base\nresource_requirements: {memory: 8GiB}\n", "x.yaml"), find)
    assert r.data["resource_requirements"] == {"cpu": 2, "memory": "8GiB"}


def test_hash_is_stable_and_follows_content() -> None:
    assert resolved_child().hash == resolved_child().hash
    assert resolved_child().hash.startswith("sha256:")
    assert resolved_child("labels: {x: y}\n").hash != resolved_child().hash


# --- explain -------------------------------------------------------------------------------


def test_explain_a_value_overridden_twice() -> None:
    r = resolved_child("os_settings: {editor: nano}\n")
    value, origins = r.explain(("os_settings", "editor"))
    assert value == "nano"
    assert [(o.describe(), o.value) for o in origins] == [
        ("base.yaml:7:36", "vim"),
        ("dev.yaml:4:23", "code"),
        ("overlay0.yaml:1:23", "nano"),
    ]


def test_explain_a_deleted_value() -> None:
    value, origins = resolved_child().explain(("labels", "tier"))
    assert value is DELETED
    assert [(o.describe(), o.value) for o in origins] == [
        ("base.yaml:6:31", "1"),
        ("dev.yaml:3:16", DELETED),
    ]


def test_explain_a_map_lists_its_keys() -> None:
    value, origins = resolved_child().explain(("os_settings",))
    assert value == {"theme": "dark", "editor": "code"}
    assert [(o.path, o.describe()) for o in origins] == [
        (("os_settings", "theme"), "base.yaml:7:22"),
        (("os_settings", "editor"), "base.yaml:7:36"),
        (("os_settings", "editor"), "dev.yaml:4:23"),
    ]


def test_explain_inside_a_list_names_the_list() -> None:
    value, origins = resolved_child().explain(("restricted_commands", 0))
    assert value == "reboot"
    assert [o.path for o in origins] == [("restricted_commands",), ("restricted_commands",)]


def test_explain_a_customization() -> None:
    r = resolved_child(customizations={"os_settings.editor": "emacs"})
    value, origins = r.explain(("os_settings", "editor"))
    assert value == "emacs"
    assert origins[-1].describe() == "customization"


def test_explain_an_unset_key() -> None:
    assert resolved_child().explain(("os_settings", "nothing")) == (DELETED, [])


# --- key paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        ("os_settings.theme", ("os_settings", "theme")),
        ("labels", ("labels",)),
        (
            'application_configuration.app.values."a.b"',
            ("application_configuration", "app", "values", "a.b"),
        ),
        ('a."x\\"y"', ("a", 'x"y')),
    ],
)
def test_parse_key(key: str, parts: tuple[str, ...]) -> None:
    assert parse_key(key) == parts
    if '\\"' not in key:
        assert format_key(parts) == key


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "empty key path"),
        ("a.", "'a.' ends with '.'"),
        ("a..b", "'a..b' is not a key path such as os_settings.theme"),
        ('a."b"c', "'a.\"b\"c': expected '.' after 'b'"),
    ],
)
def test_parse_key_errors(key: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_key(key)
    assert str(info.value) == message


def test_customization_layer_builds_nested_data() -> None:
    layer = customization_layer({"os_settings.theme": "light", 'labels."a.b"': "c"})
    assert layer.data == {"os_settings": {"theme": "light"}, "labels": {"a.b": "c"}}
    assert layer.kind == "customization"


def test_compose_layers_without_text() -> None:
    """The server composes stored data (no source text): problems name the layer."""
    leaf = Layer("persona", "db:web@3", {"name": "web", "labels": {"a": "b"}}, persona="web")
    binding = Layer("binding", "binding eu (priority 10)", {"labels": {"region": "eu"}})
    r = compose([leaf], [binding])
    assert r.data == {"name": "web", "labels": {"a": "b", "region": "eu"}}
    bad = Layer("binding", "binding bad", {"decay_rate": 7})
    with pytest.raises(SpecError) as info:
        compose([leaf], [bad])
    assert str(info.value) == "binding bad: decay_rate: must be less than or equal to 1"
