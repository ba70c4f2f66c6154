"""``mien persona effectiveness``: whether a persona's rules help, from what its instances'
agents reported. One table per persona version, a row per rule: fires, time firing,
actions by outcome, and the metric the rule serves before → after its actions (or why
there is no number yet). Thin over ``GET /api/v1/personas/{name}/effectiveness``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mien.cli.common import OutputFormat, fail, info
from mien.cli.fleet import common as cc
from mien.cli.fleet.config import Connection
from mien.cli.fleet.telemetry import number
from mien.protocol.effectiveness import RuleEffect, VersionEffect


def duration(seconds: float | None) -> str:
    """``95`` → ``1m35s``; ``None`` → ``-``."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts[:2])


def metric_cell(rule: RuleEffect) -> str:
    m = rule.metric
    if m.insufficient is not None or m.before is None or m.after is None or m.change is None:
        return m.insufficient or "insufficient data"
    sign = "+" if m.change > 0 else ""
    return (
        f"{m.metric}: {number(m.before)} → {number(m.after)} "
        f"(median change {sign}{number(m.change)}, {m.measured} actions, ±{duration(m.window)})"
    )


def rows(version: VersionEffect) -> list[list[str]]:
    out = []
    for r in version.rules:
        a = r.actions
        firing = duration(r.firing_seconds) if r.fires else "-"
        if r.fires:
            firing += f" (median {duration(r.firing_median)})"
        if r.still_firing:
            firing += f", {r.still_firing} still firing"
        out.append(
            [
                r.rule,
                str(r.fires),
                firing,
                f"{a.applied} / {a.refused} / {a.suppressed} / {a.failed}",
                metric_cell(r),
            ]
        )
    return out


def effectiveness_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The persona.")],
    version: Annotated[
        int | None,
        typer.Option("--version", min=1, metavar="V", help="One version (default: the latest)."),
    ] = None,
    compare: Annotated[
        tuple[int, int] | None,
        typer.Option("--compare", metavar="V1 V2", help="Two versions side by side."),
    ] = None,
    since: Annotated[
        str, typer.Option("--since", metavar="DURATION", help="How far back: 1h, 2d, 7d.")
    ] = "7d",
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Show whether a persona's rules help: per rule, how often it fired, how long it stayed
    firing, what became of its actions and how the metric it serves moved.

    Actions are counted as applied / refused / suppressed / failed: applied includes
    changes done for good and requests sent to a provider; refused means beyond the
    persona's trust_levels; suppressed means a rule serving a heavier goal won, or the
    action's cooldown had not passed; failed means it failed (given up or waiting for a
    retry).

    The metric a rule serves is its `serves` when that names a metric, else the first
    metric its `when` reads. For each applied action the median of that metric in a window
    of max(3 × for, 1m) before the action is compared with the median in the same window
    after it; the table shows the medians over the actions and the median change. With
    fewer than 5 fires (or 5 measured actions) it says "insufficient data" instead of a
    number.

    Examples:

      mien persona effectiveness web-server

      mien persona effectiveness web-server --compare 3 4 --since 30d

      mien persona effectiveness web-server --version 2 --output json
    """
    from mien.server.telemetry import parse_duration

    if version is not None and compare is not None:
        fail("--version and --compare: give one of them", 2)
    if compare is not None and compare[0] == compare[1]:
        fail(f"--compare {compare[0]} {compare[1]}: give two different versions", 2)
    try:
        back = parse_duration(since)
    except ValueError as exc:
        fail(f"--since {exc}", 2)
    with cc.client(conn) as api:
        answer = api.persona_effectiveness(
            name, version=version, compare=list(compare or ()), since=back
        )
    if output is OutputFormat.json:
        cc.dump(answer)
        return
    for found in answer.versions:
        title = (
            f"{answer.persona} v{found.version}: {found.instances} instance(s), "
            f"{found.events} event(s) in the last {since}"
        )
        if not found.rules:
            info(f"{title}: the persona has no rules")
            continue
        cc.table(
            [
                "rule",
                "fires",
                "time firing",
                "applied / refused / suppressed / failed",
                "metric before → after",
            ],
            rows(found),
            title=title,
        )
    if answer.truncated:
        info("more events than one answer reads: the oldest were left out (use a shorter --since)")


def register(app: typer.Typer) -> None:
    app.command("effectiveness")(cc.connected(effectiveness_cmd))
