"""``mien instance effective``: why an instance should run what it should run.

The server's explain trail for one instance: which source chose the persona (activation,
binding, default), which bindings matched and which won, the layers composed (persona
versions, binding overrides, personas add-bindings layered on top), which binding brought
each layer, which layer set each key, and which trust levels the fleet policy capped.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mien.cli.common import OutputFormat, console, esc, info, warn
from mien.cli.fleet import common as cc
from mien.cli.fleet.config import Connection
from mien.cli.fleet.instances import ID

if TYPE_CHECKING:
    from mien.protocol import EffectivePersona


def effective_cmd(
    instance_id: ID,
    key: Annotated[
        str | None,
        typer.Option("--key", metavar="PATH", help="Only keys under this dotted path."),
    ] = None,
    document: Annotated[
        bool, typer.Option("--document", help="Print the effective document (YAML) instead.")
    ] = False,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Explain what the instance should run: which version, which bindings matched and
    which one won, which overrides apply, which personas add-bindings layer on top, every
    layer with the binding that brought it, and which layer set each key.

    Examples:

      mien instance effective vm-0042

      mien instance effective vm-0042 --key environment_variables

      mien instance effective vm-0042 --document > effective.yaml
    """
    with cc.client(conn) as api:
        eff = api.effective_persona(api.find_instance(instance_id).id)
    if output is OutputFormat.json:
        cc.dump(eff)
        return
    if document:
        from mien.spec.canonical import to_yaml

        if eff.document is None:
            info(f"{instance_id}: nothing is desired ({eff.explain.decision})")
            return
        sys.stdout.write(to_yaml(eff.document))
        return
    print_explain(eff, key)


def print_explain(eff: EffectivePersona, key: str | None) -> None:
    ex = eff.explain
    out = console()
    out.print(f"[bold]{esc(eff.instance_id)}[/bold]: {esc(ex.decision)}")
    if ex.activation is not None:
        a = ex.activation
        out.print(
            f"  activation {esc(a.id)}: {esc(a.persona)} v{a.version}, {a.status}, "
            f"by {esc(a.created_by)} at {cc.local_time(a.created_at)}"
        )
    out.print(f"  default persona: {esc(ex.default_persona or '(none)')}")
    if eff.desired.error:
        out.print(f"  [red]cannot compose: {esc(eff.desired.error)}[/red]")
    out.print()
    if ex.bindings:
        cc.table(
            ["binding", "selector", "persona", "priority", "matched", "used", "why"],
            [
                [
                    b.name,
                    cc.selector_text(b.selector),
                    b.persona,
                    b.priority,
                    "yes" if b.matched else "no",
                    "yes" if b.used else "no",
                    b.reason,
                ]
                for b in ex.bindings
            ],
            title="bindings, in decision order",
        )
    if ex.layers:
        cc.table(
            ["#", "layer", "kind", "brought by"],
            [
                [n, layer.label, layer.kind, _brought(layer.kind, layer.binding, eff)]
                for n, layer in enumerate(ex.layers, 1)
            ],
            title="layers, later wins (additions join rules and restricted commands)",
        )
    for skipped in ex.skipped:
        warn(f"override not applied: {skipped}")
    if eff.desired.capped:
        cc.table(
            ["risk", "persona grants", "policy allows", "policy entry"],
            [[c.risk, c.granted, c.allowed, c.entry] for c in eff.desired.capped],
            title=f"trust capped by fleet policy v{eff.desired.policy_version} "
            "(the agent gets the capped levels)",
        )
    keys = {
        k: v
        for k, v in ex.keys.items()
        if key is None or k == key or k.startswith((key + ".", key + "["))
    }
    if key is not None and not keys:
        info(f"no key {key!r} in the effective persona")
        return
    rows = []
    for path, origins in sorted(keys.items()):
        last = origins[-1]
        value = "(deleted)" if last.deleted else _compact(last.value)
        overrode = ", ".join(o.layer for o in origins[:-1])
        rows.append([path, last.layer, value, overrode])
    if rows:
        cc.table(["key", "set by", "value", "overrode"], rows, title="keys")


def _brought(kind: str, binding: str | None, eff: EffectivePersona) -> str:
    if binding is not None:
        return f"binding {binding}" + (" (adds)" if kind == "addition" else "")
    return {"activation": "activation", "default": "default persona"}.get(eff.desired.source, "-")


def _compact(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def register(app: typer.Typer) -> None:
    app.command("effective")(cc.connected(effective_cmd))
