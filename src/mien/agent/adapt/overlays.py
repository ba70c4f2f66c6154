"""The actions that go through the engine: ``set_setting`` (a runtime overlay on the active
persona) and ``switch_persona``.

An overlay is applied as a normal apply of the persona the machine runs with every active
automated setting laid over it: the same plan, transaction and journal as ``mien apply``,
recorded in history as kind ``automated`` with the rule's name. The persona without them
(the *base*) is remembered when the first overlay goes on, and reverting one re-applies
the base with the overlays still active. A person's customizations still win over an
automated value (they are laid over everything, as always).

When someone else changes what the machine runs (``mien apply``, a rollback, the server),
:mod:`mien.agent.adapt.loop` calls :func:`adopt_base`: the new state becomes the base, and
overlays whose rule still fires on the same persona are laid over it again; a switch to
another persona ends them. Used by :mod:`mien.agent.adapt.executors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mien.agent.adapt.action_base import ActionFailed, Ctx, Done, param
from mien.agent.adapt.ledger import APPLIED, Ledger
from mien.agent.sources import Source

BASE_KEY = "overlay_base"
OWN_KEY = "overlay_states"  # active_hash of a state with overlays → its base
KIND = "automated"


def active_source(ledger: Ledger) -> tuple[int, Source] | None:
    """The history entry the machine runs, as a source to apply again."""
    raw = ledger.state.get_meta("active_history")
    if not raw or not raw.isdigit():
        return None
    entry, document, _, extra = ledger.state.history_entry(int(raw))
    if not entry.persona:
        return None
    return int(raw), Source(
        entry.persona, document, dict(extra.get("locked_by", {})), entry.persona
    )


def base(ledger: Ledger) -> Source | None:
    """The persona without automated overlays (remembered, else what runs now)."""
    stored = ledger.get(BASE_KEY)
    if isinstance(stored, dict):
        return _as_source(stored)
    found = active_source(ledger)
    return None if found is None else found[1]


def _as_dict(source: Source) -> dict[str, Any]:
    return {
        "name": source.name,
        "data": source.data,
        "locked_by": source.locked_by,
        "label": source.label,
    }


def _as_source(value: Mapping[str, Any]) -> Source:
    return Source(value["name"], value["data"], dict(value["locked_by"]), value["label"])


def remember_base(ledger: Ledger, source: Source | None) -> None:
    ledger.put(**{BASE_KEY: None if source is None else _as_dict(source)})


def base_of(ledger: Ledger, active_hash: str | None) -> Source | None:
    """The base of a state the loop applied with overlays (found again after a rollback
    to it), else None."""
    known = ledger.get(OWN_KEY) or {}
    value = known.get(active_hash or "")
    return None if value is None else _as_source(value)


def with_overlays(source: Source, items: Mapping[str, Any]) -> Source:
    """``source`` with the settings ``items`` (``key.path: value``) laid over it."""
    from mien.spec.compose import compose, customization_layer
    from mien.spec.errors import SpecError
    from mien.spec.layers import Layer

    if not items:
        return source
    layer = Layer("persona", source.label, source.data, persona=source.name or None)
    overlay = Layer("overlay", "automated settings", customization_layer(dict(items)).data)
    try:
        resolved = compose([layer], [overlay], locked_by=source.locked_by)
    except SpecError as exc:
        raise ActionFailed(
            "the setting is not valid for this persona: "
            + "; ".join(str(p).split(": ", 1)[-1] for p in exc.problems),
            retry=False,
        ) from None
    return Source(source.name, resolved.data, dict(resolved.locked_by), source.label)


def active_overlays(ledger: Ledger, persona: str, *, without: int | None = None) -> dict[str, Any]:
    items: dict[str, Any] = {}
    for change in ledger.changes([APPLIED]):
        if change.action == "set_setting" and change.persona == persona and change.id != without:
            items[str(change.undo["key"])] = change.undo["value"]
    return items


def apply_with(ctx: Ctx, items: Mapping[str, Any], note: str) -> int | None:
    """Apply the base persona with ``items`` over it, as one transaction."""
    from mien.agent.engine import EngineError
    from mien.agent.handlers.base import HandlerError
    from mien.agent.transaction import ApplyFailed

    source = base(ctx.ledger)
    if source is None or source.name != ctx.persona:
        raise ActionFailed(f"persona {ctx.persona!r} is not the one the machine runs", retry=False)
    if ctx.ledger.get(BASE_KEY) is None:
        remember_base(ctx.ledger, source)
    target = with_overlays(source, items)
    try:
        result = ctx.engine().apply_source(target, kind=KIND, note=note)
    except ApplyFailed as exc:
        raise ActionFailed(f"apply failed at {exc}; nothing was changed") from None
    except (EngineError, HandlerError, OSError) as exc:
        raise ActionFailed(str(exc)) from None
    history = result.history_id
    if items:
        known = dict(ctx.ledger.get(OWN_KEY) or {})
        known[ctx.ledger.state.get_meta("active_hash") or ""] = _as_dict(source)
        ctx.ledger.put(**{OWN_KEY: dict(list(known.items())[-20:])})
    ctx.log(f"{note}: history #{history}" if history else f"{note}: nothing to change")
    return history


class SetSetting:
    """A runtime overlay of one setting on the active persona."""

    reversible = True

    def apply(self, ctx: Ctx, params: Mapping[str, Any]) -> Done:
        from mien.spec.keys import parse_key

        key = str(param(params, "key"))
        if params.get("value") is None:
            if params.get("from"):  # the rules fill it in once the source has data
                raise ActionFailed(f"no data from {params['from']} yet")
            raise ActionFailed("missing parameter 'value'", retry=False)
        try:
            parse_key(key)
        except ValueError as exc:
            raise ActionFailed(f"key {key!r}: {exc}", retry=False) from None
        items = active_overlays(ctx.ledger, ctx.persona)
        items[key] = params["value"]
        history = apply_with(ctx, items, f"rule {ctx.rule}: set {key}")
        return Done(
            "applied",
            f"{key} = {params['value']!r}",
            {"key": key, "value": params["value"], "history": history},
        )

    def revert(self, ctx: Ctx, undo: Mapping[str, Any]) -> None:
        items = active_overlays(ctx.ledger, ctx.persona, without=ctx.change_id)
        apply_with(ctx, items, f"rule {ctx.rule}: revert {undo.get('key')}")
        if not items:
            remember_base(ctx.ledger, None)


class SwitchPersona:
    """A normal switch through the engine, recorded as automated with the rule's name.
    Not reverted: the rule belongs to the persona it switched away from."""

    reversible = False

    def apply(self, ctx: Ctx, params: Mapping[str, Any]) -> Done:
        from mien.agent.engine import EngineError
        from mien.agent.handlers.base import HandlerError
        from mien.agent.transaction import ApplyFailed
        from mien.spec.errors import SpecError

        name = str(param(params, "persona"))
        engine = ctx.engine()
        try:
            result = engine.apply_source(
                engine.source(name), kind=KIND, note=f"rule {ctx.rule}: switch to {name}"
            )
        except SpecError as exc:
            raise ActionFailed(
                f"persona {name!r} is not valid: " + "; ".join(str(p) for p in exc.problems),
                retry=False,
            ) from None
        except ApplyFailed as exc:
            raise ActionFailed(f"switch to {name} failed at {exc}; nothing was changed") from None
        except (EngineError, HandlerError, OSError) as exc:
            raise ActionFailed(str(exc)) from None
        return Done("done", f"switched to {name} (history #{result.history_id})")

    def revert(self, ctx: Ctx, undo: Mapping[str, Any]) -> None:
        return None
