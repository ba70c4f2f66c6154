"""Why an instance's desired persona is what it is: the explanation part of
``GET /instances/{id}/effective_persona``.

Pure functions over what :mod:`mien.server.resolve` decided and composed: which bindings
matched and which were used (and why not), one sentence on how the persona was chosen, and
which layer set each key. Used by the instances routes (:mod:`mien.server.api.instances`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mien.server.resolve import BindingDoc, Choice, Effective, PersonaDoc, live, selector_matches
from mien.spec.errors import format_path
from mien.spec.layers import DELETED, Resolved


def binding_reasons(
    ranked: Sequence[BindingDoc],
    tags: Mapping[str, str],
    choice: Choice,
    personas: Mapping[str, PersonaDoc],
) -> list[tuple[BindingDoc, bool, bool, str]]:
    """For each binding: (binding, matched, used, reason)."""
    out = []
    for b in ranked:
        if not selector_matches(b.selector, tags):
            missing = [k for k in b.selector if k not in tags]
            why = (
                f"tag {missing[0]!r} is not set"
                if missing
                else "a tag value differs from the selector"
            )
            out.append((b, False, False, why))
        elif not live(personas, b.persona):
            out.append((b, True, False, f"persona {b.persona!r} is deleted"))
        elif b.mode == "add" and b.persona != choice.persona:
            out.append((b, True, b.name in choice.additions, _add_reason(b, choice, ranked)))
        elif b.persona != choice.persona:
            out.append((b, True, False, f"{choice.source} chose {choice.persona!r}"))
        elif b.mode == "add":
            extra = "; its override applies" if b.name in choice.overrides else ""
            out.append((b, True, bool(extra), f"would add the chosen persona itself{extra}"))
        elif b.name in choice.overrides:
            out.append((b, True, True, "selects this persona; its override applies"))
        else:
            out.append((b, True, True, "selects this persona"))
    return out


def _add_reason(b: BindingDoc, choice: Choice, ranked: Sequence[BindingDoc]) -> str:
    if choice.persona is None:
        return "adds to the chosen persona, and none was chosen"
    if b.name in choice.additions:
        return f"adds persona {b.persona!r} on top of {choice.persona!r}"
    by = next(
        (o.name for o in ranked if o.name in choice.additions and o.persona == b.persona), None
    )
    return f"persona {b.persona!r} is already added by binding {by!r}"


def decision(choice: Choice, effective: Effective) -> str:
    """One sentence saying how the persona was chosen."""
    if choice.persona is None:
        base = "no activation, no matching binding and no default persona: nothing is desired"
        return f"{base} ({choice.note})" if choice.note else base
    version = f" v{effective.version}" if effective.version else ""
    why = {
        "activation": f"explicitly activated (activation {choice.activation_id})",
        "binding": f"selected by binding {choice.bindings[0]!r}"
        if choice.bindings
        else "selected by a binding",
        "default": "it is the default persona and nothing else applies",
        "none": "",
    }[choice.source]
    out = f"{choice.persona}{version}: {why}"
    if choice.overrides:
        out += "; overrides from " + ", ".join(choice.overrides)
    if choice.additions:
        out += "; personas added by " + ", ".join(choice.additions)
    if choice.note:
        out += f" ({choice.note})"
    if effective.error:
        out += f"; {effective.error}"
    return out


def key_origins(resolved: Resolved) -> dict[str, list[tuple[str, Any, bool]]]:
    """For each key set by any layer: (layer label, value, deleted) oldest first."""
    out: dict[str, list[tuple[str, Any, bool]]] = {}
    for path, origins in sorted(resolved.trail.items(), key=lambda item: format_path(item[0])):
        out[format_path(path)] = [
            (o.layer.label, None if o.value is DELETED else o.value, o.value is DELETED)
            for o in origins
        ]
    return out
