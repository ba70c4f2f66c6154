"""How much of its persona an instance has in effect, and what its machine reports, as
``mien instance list`` and ``mien instance show`` print it.

"In sync" is said only when the agent applied the desired content *and* every setting it
reported is in effect; an instance whose persona is only partly in effect says so, with the
counts (:func:`mien.protocol.status.effect_of`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mien.cli.common import info
from mien.cli.fleet import common as cc
from mien.protocol.status import fully_in_sync

if TYPE_CHECKING:
    from mien.protocol import Instance
    from mien.protocol.status import Effect, InstanceStatus


def effect_text(effect: Effect) -> str:
    """The ``effect`` column: ``14/14``, ``10/14 (3 stored, 1 failed)``, ``-`` (unknown)."""
    if effect.state == "unknown":
        return "-"
    if effect.state == "none" and effect.total == 0:
        return "none"
    text = f"{effect.applied}/{effect.total}"
    rest = [
        f"{n} {word}"
        for n, word in (
            (effect.pending, "pending"),
            (effect.stored, "stored"),
            (effect.failed, "failed"),
        )
        if n
    ]
    return text + (f" ({', '.join(rest)})" if rest else "")


def sync_word(inst: Instance) -> str | None:
    """``in sync``, ``partly in effect`` or ``not in effect`` for an instance whose agent
    applied the desired content; ``None`` when it has not (the caller says why)."""
    if not inst.in_sync:
        return None
    if fully_in_sync(inst.in_sync, inst.effect):
        return "in sync" if inst.desired.hash else "nothing desired"
    return "partly in effect" if inst.effect.state == "partial" else "not in effect"


def applied_sentence(inst: Instance) -> str:
    """For ``show``, when the agent applied the desired content."""
    if not inst.desired.hash:
        return "Nothing is desired: the agent keeps what it runs."
    if fully_in_sync(inst.in_sync, inst.effect):
        if inst.effect.state == "unknown":
            return "In sync: the agent reported applying the desired content."
        return f"In sync: the agent applied the desired content; {inst.effect.summary}."
    return f"NOT in sync: the agent applied the desired content, but it is {inst.effect.summary}."


def print_machine(status: InstanceStatus) -> None:
    """The tables of what the agent reported of its machine."""
    machine = status.machine
    if machine is None:
        return
    if machine.customizations:
        shown = len(machine.customizations)
        total = max(machine.customizations_total, shown)
        cc.table(
            ["key", "value", "source", "from"],
            [[c.key, c.value, c.source, c.origin] for c in machine.customizations],
            title=f"customizations kept ({shown} of {total})"
            if total > shown
            else f"customizations kept ({total})",
        )
    if machine.drift:
        shown = len(machine.drift)
        total = max(machine.drift_total, shown)
        cc.table(
            ["file"],
            [[p] for p in machine.drift],
            title=f"drift: managed files changed behind mien ({shown} of {total})"
            if total > shown
            else f"drift: managed files changed behind mien ({total})",
        )
    if machine.rules:
        cc.table(
            ["rule", "state", "since"],
            [[r.rule, r.phase, cc.local_time(r.since)] for r in machine.rules],
            title=f"rule states ({machine.persona or '-'})",
        )
    if machine.actions:
        cc.table(
            ["#", "at", "rule", "action", "status", "error"],
            [
                [a.id, cc.local_time(a.at), a.rule, a.action, a.status, a.error]
                for a in machine.actions
            ],
            title=f"recent actions (newest first, last {len(machine.actions)})",
        )
    info(f"the agent reported its machine's status {cc.ago(machine.at)}")
