"""``mien instance metrics | events``: what an instance's agent reported to the server.

``metrics`` prints one line per metric — a sparkline of Unicode blocks with its min, max
and last value — or, with ``--output json``, the series the server answered
(``GET /api/v1/instances/{id}/metrics``). ``events`` lists the adaptation events the agent
sent (rule transitions, actions, refusals, fetches).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated

import typer

from mien.cli.common import OutputFormat, console, esc, fail, info
from mien.cli.fleet import common as cc
from mien.cli.fleet.config import Connection
from mien.cli.fleet.instances import ID

BLOCKS = "▁▂▃▄▅▆▇█"
WIDTH = 60


def sparkline(values: Sequence[float], width: int = WIDTH) -> str:
    """``values`` as at most ``width`` Unicode blocks, lowest ▁ to highest █ (averaged
    into ``width`` columns when there are more); a flat series is all ▄."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    if len(finite) > width:
        columns = []
        for i in range(width):
            part = finite[i * len(finite) // width : (i + 1) * len(finite) // width]
            columns.append(sum(part) / len(part))
        finite = columns
    low, high = min(finite), max(finite)
    if high - low < 1e-12:
        return BLOCKS[3] * len(finite)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round((v - low) / (high - low) * top)] for v in finite)


def number(value: float | None) -> str:
    if value is None:
        return "-"
    if value == int(value) and abs(value) < 1e12:
        return str(int(value))
    return f"{value:.4g}" if abs(value) >= 1e-3 else f"{value:.3g}"


def _seconds(text: str | None, option: str) -> float | None:
    from mien.server.telemetry import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        fail(f"{option} {exc}", 2)


def metrics_cmd(
    instance_id: ID,
    name: Annotated[
        str | None, typer.Option("--name", metavar="METRIC", help="One metric (default: all).")
    ] = None,
    since: Annotated[
        str, typer.Option("--since", metavar="DURATION", help="How far back: 90s, 15m, 1h, 7d.")
    ] = "1h",
    step: Annotated[
        str | None,
        typer.Option("--step", metavar="DURATION", help="Per point (default: the server picks)."),
    ] = None,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Show an instance's metrics as its agent reported them: a sparkline per metric with
    its min, max and last value.

    Examples:

      mien instance metrics vm-0042 --name cpu_percent --since 1h

      mien instance metrics vm-0042 --since 7d --output json
    """
    back = _seconds(since, "--since")
    per = None if step is None else (0.0 if step.strip() == "0" else _seconds(step, "--step"))
    with cc.client(conn) as api:
        instance_id = api.find_instance(instance_id).id
        answer = api.instance_metrics(instance_id, name=name, since=back, step=per)
    if output is OutputFormat.json:
        cc.dump(answer)
        return
    if not answer.series:
        info(f"{instance_id}: no {name or 'metrics'} reported in the last {since}")
        return
    out = console()
    wide = max(len(s.name) for s in answer.series)
    step_text = "each sample" if not answer.step else f"{number(answer.step)}s per point"
    out.print(f"[bold]{esc(instance_id)}[/bold]  last {esc(since)}, {step_text} ({answer.source})")
    for series in answer.series:
        line = sparkline([p[1] for p in series.points])
        out.print(
            f"  {esc(series.name):<{wide}}  {line:<{WIDTH}}  min {number(series.min)}"
            f"  max {number(series.max)}  last {number(series.last)}",
            highlight=False,
        )


def events_cmd(
    instance_id: ID,
    since: Annotated[
        str | None, typer.Option("--since", metavar="DURATION", help="How far back: 15m, 1h, 2d.")
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="A kind or its prefix, e.g. adapt.rule or adapt.action."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 1000,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """List the adaptation events an instance's agent sent, oldest first: rule transitions,
    actions, refusals, data source fetches.

    Example:

      mien instance events vm-0042 --since 1h
    """
    back = _seconds(since, "--since")
    with cc.client(conn) as api:
        instance_id = api.find_instance(instance_id).id
        found = api.telemetry_events(instance=instance_id, since=back, kind=kind, limit=limit)
    if output is OutputFormat.json:
        cc.dump(found)
        return
    if not found:
        info(f"{instance_id}: no events")
        return
    cc.table(
        ["at", "event", "detail"],
        [
            [
                cc.local_time(e.at),
                e.kind,
                ", ".join(f"{k}={v}" for k, v in e.detail.items() if v not in (None, "")),
            ]
            for e in found
        ],
    )


def register(app: typer.Typer) -> None:
    app.command("metrics")(cc.connected(metrics_cmd))
    app.command("events")(cc.connected(events_cmd))
