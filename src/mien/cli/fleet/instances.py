"""``mien instance list|show|tag|effective|delete``: the fleet's machines as the server sees
them.

What the server wants an instance to run (*desired*: an activation, a binding or the
default persona) and what its agent last reported running (*applied*) are always shown
side by side and never one in place of the other: an instance is "in sync" only when its
agent reported the desired content hash *and* every setting of it in effect; one whose
persona is only partly in effect says so (:mod:`mien.cli.fleet.instance_status`). Activations and remote commands are in
:mod:`mien.cli.fleet.remote`, the explanation of the effective persona in
:mod:`mien.cli.fleet.effective`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from mien.cli.common import OutputFormat, console, done, esc, info, paragraphs
from mien.cli.fleet import common as cc
from mien.cli.fleet.args import parse_pairs, parse_tag_changes
from mien.cli.fleet.config import Connection
from mien.cli.fleet.instance_status import applied_sentence, effect_text, print_machine, sync_word
from mien.protocol.status import fully_in_sync

if TYPE_CHECKING:
    from mien.protocol import AppliedState, DesiredSummary, Instance

app = typer.Typer(
    name="instance",
    no_args_is_help=True,
    help=paragraphs("""
        The fleet's machines: what each should run and what its agent reports running.

          mien instance list --tag role=web
          mien instance show vm-0042
          mien instance activate vm-0042 web --version 3
          mien instance exec vm-0042 -- systemctl status nginx
        """),
)

ID = Annotated[
    str,
    typer.Argument(
        metavar="INSTANCE", help="Instance id, or its host name when only one instance has it."
    ),
]


# --- how an instance stands ----------------------------------------------------------------


def desired_text(d: DesiredSummary) -> str:
    if d.error:
        return f"{d.persona or '?'} (cannot compose)"
    if d.source == "none" or not d.persona:
        return "-"
    why = {
        "activation": "activated",
        "binding": "binding " + (d.bindings[0] if d.bindings else "?"),
        "default": "default",
    }.get(d.source, d.source)
    added = " + " + ", ".join(d.added) if d.added else ""  # add-bindings layered on top
    return f"{d.persona} v{d.version} ({why}{added})"


def applied_text(a: AppliedState) -> str:
    if not a.persona:
        return "-"
    return f"{a.persona} v{a.version}" if a.version is not None else a.persona


def state_text(inst: Instance) -> str:
    """One word or two for where the instance stands; only agent reports count."""
    d, a = inst.desired, inst.applied
    if inst.deleted_at is not None:
        text = "deleted"
    elif d.error:
        text = "error: cannot compose"
    elif inst.in_sync:
        text = sync_word(inst) or "in sync"
    elif a.state == "applying":
        text = "applying"
    elif a.state == "failed":
        text = "failed"
    elif a.state is None:
        text = "never reported"
    else:
        text = "out of date"
    if not inst.connected and inst.deleted_at is None:
        text += " (offline)"
    return text


# --- commands ------------------------------------------------------------------------------


@app.command("list")
@cc.connected
def list_cmd(
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", "-t", metavar="KEY=VALUE", help="Only these tags (repeatable)."),
    ] = None,
    persona: Annotated[
        str | None, typer.Option("--persona", "-p", help="Only instances that should run it.")
    ] = None,
    deleted: Annotated[bool, typer.Option("--deleted", help="Include deleted instances.")] = False,
    noncompliant: Annotated[
        bool,
        typer.Option(
            "--noncompliant",
            help="Only instances out of fleet policy (locked keys changed, actions beyond "
            "trust refused, commands refused), with the reasons.",
        ),
    ] = False,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """List instances: tags, desired and applied persona, state, how many settings are in
    effect (applied/total, and how many are pending, stored or failed) and last contact.

    Examples:

      mien instance list

      mien instance list --tag role=web --tag region=eu

      mien instance list --persona web -o json | jq -r '.[] | select(.in_sync|not) | .id'

      mien instance list --noncompliant
    """
    tags = parse_pairs(tag or [], "--tag")
    with cc.client(conn) as api:
        items = api.list_instances(
            tags=tags,
            persona=persona,
            include_deleted=deleted,
            noncompliant=True if noncompliant else None,
        )
    if output is OutputFormat.json:
        cc.dump(items)
        return
    if noncompliant:
        if not items:
            info(
                "every instance is within fleet policy"
                + (" (of those that match)" if tags or persona else "")
            )
            return
        cc.table(
            ["id", "hostname", "reason", "count", "last", "detail"],
            [
                [
                    i.id,
                    i.hostname or "",
                    r.kind.replace("_", " "),
                    r.count,
                    cc.ago(r.last),
                    r.detail,
                ]
                for i in items
                for r in i.noncompliance
            ],
        )
        info(f"{len(items)} instance(s) out of fleet policy")
        return
    if not items:
        info("no instances match" if tags or persona else "no instances enrolled yet")
        return
    rows = [
        [
            i.id,
            i.hostname or "",
            cc.tags_text(i.tags),
            desired_text(i.desired),
            applied_text(i.applied),
            state_text(i),
            effect_text(i.effect),
            cc.ago(i.last_seen),
        ]
        for i in items
    ]
    cc.table(["id", "hostname", "tags", "desired", "applied", "state", "effect", "last seen"], rows)
    in_sync = sum(1 for i in items if fully_in_sync(i.in_sync, i.effect))
    partly = sum(1 for i in items if i.in_sync and not fully_in_sync(i.in_sync, i.effect))
    info(
        f"{len(items)} instance(s), {in_sync} in sync"
        + (f", {partly} applied but partly in effect" if partly else "")
    )


@app.command("show")
@cc.connected
def show_cmd(
    instance_id: ID,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=100, help="Activations and history shown.")
    ] = 5,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Show one instance: desired and applied persona side by side, how much of it is in
    effect (the settings that are not, and why), the customizations, drift, rule states and
    recent automated actions its agent reported, recent activations, its persona history and
    the provider calls made for it.

    Example:

      mien instance show vm-0042
    """
    from mien.client import providers as provider_ops

    with cc.client(conn) as api:
        inst = api.find_instance(instance_id)
        activations = api.list_activations(instance=inst.id, limit=limit)
        history = api.instance_history(inst.id)
        status = api.instance_status(inst.id)
        calls = api.send(provider_ops.instance_calls(inst.id, limit)).items
    if output is OutputFormat.json:
        cc.dump(
            {
                "instance": inst,
                "status": status,
                "activations": activations,
                "history": history,
                "provider_calls": calls,
            }
        )
        return
    out = console()
    seen = "connected" if inst.connected else "offline"
    out.print(f"[bold]{esc(inst.id)}[/bold]  {esc(inst.hostname or '')}")
    out.print(f"  tags:      {esc(cc.tags_text(inst.tags))}")
    out.print(
        f"  enrolled:  {cc.local_time(inst.enrolled_at)} by {esc(inst.enrolled_by)}"
        f"   agent {esc(inst.agent_version or '?')}"
    )
    out.print(f"  last seen: {cc.ago(inst.last_seen)} ({seen})")
    if inst.deleted_at:
        out.print(f"  [red]deleted {cc.local_time(inst.deleted_at)}[/red]")
    out.print()
    cc.table(["", "desired (server)", "applied (agent reported)"], side_by_side(inst))
    out.print(f"\n  {esc(sync_sentence(inst))}\n")
    if inst.desired.capped:
        cc.table(
            ["risk", "persona grants", "policy allows", "policy entry"],
            [[c.risk, c.granted, c.allowed, c.entry] for c in inst.desired.capped],
            title=f"trust capped by fleet policy v{inst.desired.policy_version}",
        )
    if inst.noncompliance:
        cc.table(
            ["reason", "count", "last", "detail"],
            [
                [r.kind.replace("_", " "), r.count, cc.ago(r.last), r.detail]
                for r in inst.noncompliance
            ],
            title="out of fleet policy",
        )
    not_applied = [s for s in inst.applied.settings if s.status != "applied"]
    if not_applied:
        cc.table(
            ["setting", "outcome", "why", "message"],
            [[s.setting, s.status, s.reason.replace("-", " "), s.message] for s in not_applied],
            title=(
                f"settings not in effect ({len(not_applied)} of "
                f"{len(inst.applied.settings)} the agent reported)"
            ),
        )
    print_machine(status)
    if activations:
        cc.table(
            ["activation", "persona", "status", "created", "by", "error"],
            [
                [
                    a.id,  # whole: it is what other commands are given back
                    f"{a.persona} v{a.version}",
                    a.status,
                    cc.local_time(a.created_at),
                    a.created_by,
                    _first_line(a.error),
                ]
                for a in activations
            ],
            title="recent activations",
        )
    if history:
        recent = history[-limit:]
        cc.table(
            ["at", "action", "persona", "hash"],
            [
                [cc.local_time(h.at), h.action or "", h.persona or "", cc.short_hash(h.hash)]
                for h in recent
            ],
            title=f"history (last {len(recent)} of {len(history)}, as the agent reported)",
        )
    if calls:
        from mien.cli.fleet.providers import provider_calls_table

        provider_calls_table(calls)


def side_by_side(inst: Instance) -> list[list[Any]]:
    d, a = inst.desired, inst.applied
    why = {
        "activation": "explicit activation",
        "binding": "binding " + ", ".join(d.bindings),
        "default": "the default persona",
        "none": "nothing (no activation, binding or default)",
    }.get(d.source, d.source)
    if d.added:
        why += "; personas added by " + ", ".join(d.added)
    return [
        ["persona", d.persona or "-", a.persona or "-"],
        ["version", d.version if d.version is not None else "-", a.version or "-"],
        ["content hash", cc.short_hash(d.hash), cc.short_hash(a.hash)],
        ["source / state", why, a.state or "never reported"],
        ["activation", d.activation_id or "-", a.activation_id or "-"],
        ["at", "-", cc.local_time(a.at)],
        ["error", d.error or "-", a.error or "-"],
    ]


def sync_sentence(inst: Instance) -> str:
    d, a = inst.desired, inst.applied
    if d.error:
        return f"NOT in sync: the server cannot compose the desired persona: {d.error}"
    if inst.in_sync:
        return applied_sentence(inst)
    if a.state == "failed":
        return "NOT in sync: the agent reported a failure (see error); it still runs the applied column."
    if a.state == "applying":
        return "NOT in sync yet: the agent is applying."
    if a.state is None:
        return "NOT in sync: the agent has never reported." + (
            "" if inst.connected else " It is offline."
        )
    return "NOT in sync: the agent has not applied the desired content yet." + (
        "" if inst.connected else " It is offline."
    )


def _first_line(text: str | None) -> str:
    if not text:
        return ""
    lines = text.strip().splitlines()
    return lines[0][:80] + (" …" if len(lines) > 1 or len(lines[0]) > 80 else "")


@app.command("tag")
@cc.connected
def tag_cmd(
    instance_id: ID,
    tags: Annotated[
        list[str] | None, typer.Argument(metavar="[KEY=VALUE]...", help="Tags to set.")
    ] = None,
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", "-k", metavar="KEY", help="A tag to remove (repeatable)."),
    ] = None,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Set or remove tags of an instance. Bindings select by tags, so this may change
    which persona the instance should run (shown after).

    Examples:

      mien instance tag vm-0042 role=web region=eu

      mien instance tag vm-0042 -k canary
    """
    changes = parse_tag_changes(tags or [], remove or [])
    with cc.client(conn) as api:
        inst = api.set_tags(api.find_instance(instance_id).id, changes)
    if output is OutputFormat.json:
        cc.dump(inst)
        return
    info(f"{inst.id}: tags {cc.tags_text(inst.tags)}")
    info(f"{inst.id}: desired {desired_text(inst.desired)}, applied {applied_text(inst.applied)}")


@app.command("delete")
@cc.connected
def delete_cmd(
    instance_id: ID, output: cc.OutputOpt = OutputFormat.table, *, conn: Connection
) -> None:
    """Remove an instance from the fleet: its agent token is revoked at once and open
    activations are cancelled. The machine keeps what it runs; enroll it again to rejoin.

    Example:

      mien instance delete vm-0042
    """
    with cc.client(conn) as api:
        instance_id = api.find_instance(instance_id).id
        api.delete_instance(instance_id)
    done(
        output,
        f"deleted instance {instance_id!r}; its agent token is revoked",
        {"deleted": instance_id},
    )
