"""Properties of composition and rendering, over generated personas (hypothesis).

* identity: composing a persona with nothing (or with an empty overlay, or with itself as
  an overlay) gives the persona back;
* null deletes: an overlay with ``null`` at any set path removes exactly that path;
* overlay order: later overlays win; overlays touching different keys commute;
* round trip: rendering a rendered persona gives the same text, in YAML and in JSON.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mien.spec.canonical import canonical, to_json, to_yaml
from mien.spec.compose import compose
from mien.spec.document import parse_document
from mien.spec.layers import DELETED, Layer, lookup
from mien.spec.models import Persona

SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
env_names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True)
# Text as people write it in a persona: any printable character, including quotes, colons,
# '#', leading/trailing spaces and line breaks; not control characters YAML forbids.
texts = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"),
        blacklist_characters="\ufeff\x85",
    )
    | st.sampled_from(["\n", "\t", " "]),
    max_size=30,
)
scalars = st.one_of(
    texts,
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
)
values_tree = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)
durations = st.sampled_from(["30s", "5m", "1h30m", "2h", "1d", "250ms"])
frequencies = st.sampled_from(["hourly", "daily", "weekly", "every 6h", "30 2 * * 1-5"])
sizes = st.sampled_from(["512MiB", "4GiB", "32GB", "1TiB", "1500MB"])
commands = st.sampled_from(["git", "docker", "python", "mkfs*", "dd", "shutdown", "sudo"])


@st.composite
def personas(draw: st.DrawFn) -> dict[str, Any]:
    """A valid persona in canonical form (a random subset of the language)."""
    data: dict[str, Any] = {"name": draw(st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True))}
    if draw(st.booleans()):
        data["description"] = draw(texts)
    if draw(st.booleans()):
        data["labels"] = draw(st.dictionaries(names, texts, max_size=3))
    if draw(st.booleans()):
        data["os_settings"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "theme": st.sampled_from(["dark", "light"]),
                    "editor": st.sampled_from(["vim", "code --wait"]),
                    "terminal_shell": st.sampled_from(["/bin/bash", "/usr/bin/zsh"]),
                    "keyboard_layout": texts,
                },
            )
        )
    if draw(st.booleans()):
        data["behavioral_settings"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "auto_update_frequency": frequencies,
                    "logging_level": st.sampled_from(["debug", "info", "error"]),
                    "retention": values_tree,
                },
            )
        )
    if draw(st.booleans()):
        data["environment_variables"] = draw(st.dictionaries(env_names, texts, max_size=4))
    if draw(st.booleans()):
        data["application_configuration"] = {
            "app": {
                "path": "/etc/app/config.json",
                "values": draw(st.dictionaries(names, values_tree, max_size=3)),
            }
        }
    overrides = draw(st.lists(commands, unique=True, max_size=3))
    restricted = draw(
        st.lists(commands.filter(lambda c: c not in overrides), unique=True, max_size=3)
    )
    if overrides:
        data["command_overrides"] = {c: f"/opt/tools/{c.strip('*')}" for c in overrides}
    if restricted:
        data["restricted_commands"] = restricted
    if draw(st.booleans()):
        data["pre_activation_script"] = draw(
            st.sampled_from(["#!/bin/sh\nexit 0\n", "echo hi", "#!/bin/sh\n  indented\n"])
        )
    if draw(st.booleans()):
        data["priority_metrics"] = {
            "performance": draw(st.sampled_from([0.1, 0.5, 1.0])),
            "cost": draw(st.sampled_from([0.25, 1.0])),  # deleting one leaves one above 0
        }
        data["trust_levels"] = {"resource_scaling": draw(st.sampled_from(["low", "high"]))}
        data["adaptation_rules"] = [
            {
                "name": "cpu",
                "when": f"metrics.cpu_percent > {draw(st.integers(1, 99))}.0",
                "for": draw(durations),
                "then": [{"action": "scale", "cpu": draw(st.integers(1, 16))}],
            }
        ]
    if draw(st.booleans()):
        data["resource_requirements"] = {"cpu": draw(st.integers(1, 64)), "memory": draw(sizes)}
    # Canonical form: what the model itself prints.
    return canonical(Persona.model_validate(data))


def persona_layer(data: dict[str, Any]) -> Layer:
    return Layer("persona", "p.yaml", copy.deepcopy(data), persona=data["name"])


def overlay(data: dict[str, Any], label: str = "o.yaml") -> Layer:
    return Layer("overlay", label, copy.deepcopy(data))


def leaf_paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a map entry (not into lists: lists are replaced whole)."""
    out = []
    if isinstance(data, dict):
        for key, value in data.items():
            out.append((*path, key))
            out.extend(leaf_paths(value, (*path, key)))
    return out


def nested(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    return dict(out)


@SETTINGS
@given(personas())
def test_identity(data: dict[str, Any]) -> None:
    assert compose([persona_layer(data)]).data == data
    assert compose([persona_layer(data)], [overlay({})]).data == data
    body = {k: v for k, v in data.items() if k != "name"}
    assert compose([persona_layer(data)], [overlay(body)]).data == data


@SETTINGS
@given(personas(), st.data())
def test_null_deletes_exactly_that_key(data: dict[str, Any], pick: st.DataObject) -> None:
    paths = [p for p in leaf_paths(data) if p[0] not in ("name", "locked")]
    if not paths:
        return
    path = pick.draw(st.sampled_from(paths))
    result = compose([persona_layer(data)], [overlay(nested(path, None))]).data
    assert lookup(result, path) is DELETED
    # Nothing else changed: putting the old value back gives the original.
    restored = compose(
        [Layer("persona", "r.yaml", result, persona=data["name"])],
        [overlay(nested(path, lookup(data, path)))],
    ).data
    assert restored == data


@SETTINGS
@given(personas(), texts, texts)
def test_later_overlay_wins(data: dict[str, Any], first: str, second: str) -> None:
    a = overlay({"labels": {"region": first}}, "a.yaml")
    b = overlay({"labels": {"region": second}}, "b.yaml")
    assert compose([persona_layer(data)], [a, b]).data["labels"]["region"] == second
    assert compose([persona_layer(data)], [b, a]).data["labels"]["region"] == first


@SETTINGS
@given(
    personas(),
    st.dictionaries(names, texts, max_size=3),
    st.dictionaries(env_names, texts, max_size=3),
)
def test_overlays_on_different_keys_commute(
    data: dict[str, Any], labels: dict[str, str], env: dict[str, str]
) -> None:
    a = overlay({"labels": labels}, "a.yaml")
    b = overlay({"environment_variables": env}, "b.yaml")
    one = compose([persona_layer(data)], [a, b])
    other = compose([persona_layer(data)], [b, a])
    assert one.data == other.data
    assert one.hash == other.hash


@SETTINGS
@given(personas(), personas())
def test_overlay_associativity(data: dict[str, Any], extra: dict[str, Any]) -> None:
    """Applying A then B equals applying (A merged with B) once."""
    # (commands: a command overridden by one and restricted by the other is rightly refused)
    a = {
        k: v
        for k, v in extra.items()
        if k not in ("name", "command_overrides", "restricted_commands")
    }
    b = {"labels": {"x": "1"}, "os_settings": {"theme": "light"}}
    two = compose([persona_layer(data)], [overlay(a, "a.yaml"), overlay(b, "b.yaml")]).data
    merged = compose(
        [Layer("persona", "ab", {"name": "ab", **copy.deepcopy(a)}, persona="ab")], [overlay(b)]
    ).data
    merged.pop("name")
    once = compose([persona_layer(data)], [overlay(merged, "ab.yaml")]).data
    assert two == once


def _render(text: str, source: str) -> tuple[str, str]:
    from mien.spec.compose import resolve

    resolved = resolve(parse_document(text, source))
    return to_yaml(resolved.data), to_json(resolved.data)


@SETTINGS
@given(personas())
def test_render_round_trip(data: dict[str, Any]) -> None:
    first_yaml, first_json = _render(to_yaml(data), "p.yaml")
    assert _render(first_yaml, "p.yaml") == (first_yaml, first_json)
    assert _render(first_json, "p.json") == (first_yaml, first_json)
    assert json.loads(first_json) == data
