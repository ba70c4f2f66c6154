"""``mien events`` and ``mien top``: what the adaptation loop did, and what it sees now.

``events`` lists rule transitions, actions, refusals, suppressions and source fetches from
the audit trail (``--follow`` keeps printing new ones); ``top`` shows the loop's last
sample (metrics with baselines and anomalies), each rule's phase and time in it, data
sources with age and last error, and the last actions, refreshed each interval
(``--once``: one frame). Both read ``state.db`` and the loop's status file; neither needs
the agent to be running. See docs/adaptation.md.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import typer

from mien.cli import common
from mien.cli.common import OutputFormat

ROOT = typer.Option(Path("/"), "--root", help="Machine root.")
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    match = _SPAN.match(text)
    if not match:
        common.fail(f"--since {text!r}: write a span such as 30s, 10m, 1h or 2d", 2)
    return time.time() - float(match.group(1)) * _UNITS[match.group(2)]


def _open(root: Path) -> Any:
    from mien.agent.state import State

    if not State.exists(root):
        common.fail(f"{root}: mien has not run on this machine (no state database)")
    return State(root, create=False)


def _clock(epoch: Any) -> str:
    return time.strftime("%H:%M:%S", time.localtime(float(epoch)))


def _line(record: Any) -> str:
    """One event for a person: the rule and action, then what happened in words (a
    transition as ``from → to: why``, an action by its message); the JSON output keeps
    every field as recorded."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.ts))
    detail = dict(record.detail)
    rule = detail.pop("rule", None)
    action = detail.pop("action", None)
    head = " ".join(str(x) for x in (rule, action) if x)
    words: list[str] = []
    if "from_" in detail and "to" in detail:
        words.append(f"{detail.pop('from_')} → {detail.pop('to')}")
        detail.pop("at", None)
        if detail.get("truth") in ("true", "false"):
            detail.pop("truth")
    if detail.get("message"):
        words.append(str(detail.pop("message")))
        detail.pop("params", None)
    if "why" in detail:
        words.append(str(detail.pop("why")))
    if detail.get("attempt") == 1:
        detail.pop("attempt")
    for key in ("until", "retry_at", "cooldown_until"):
        if isinstance(detail.get(key), int | float):
            detail[key] = _clock(detail[key])
    words += [f"{k}={v}" for k, v in detail.items() if v not in (None, "", {}, [])]
    return f"{when}  {record.event.removeprefix('adapt.'):<22} {head}  {'; '.join(words)}".rstrip()


def _as_json(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "ts": record.ts,
        "event": record.event.removeprefix("adapt."),
        "actor": record.actor,
        "persona": record.persona,
        **record.detail,
    }


def events_cmd(
    root: Path = ROOT,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events."),
    since: str | None = typer.Option(None, "--since", help="Only events this recent (1h, 30m)."),
    output: OutputFormat = typer.Option(OutputFormat.table, "--output"),
) -> None:
    """List the adaptation loop's events: rule transitions, actions, refusals,
    suppressions and source fetches, oldest first.

    Examples:
      mien events --root /srv/vm1 --since 1h
      mien events --follow --output json
    """
    from mien.agent.adapt.ledger import events

    root = root.absolute()
    start = _since(since)
    last = 0
    state = _open(root)
    try:
        while True:
            found = events(state, since=start, after_id=last)
            for record in found:
                if output is OutputFormat.json:
                    print(json.dumps(_as_json(record), default=str), flush=True)
                else:
                    print(_line(record), flush=True)
                last = record.id
            if not follow:
                return
            if not found:
                time.sleep(1.0)
    except KeyboardInterrupt:
        return
    finally:
        state.close()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "-" if value is None else str(value)


def snapshot(root: Path) -> dict[str, Any]:
    """What ``mien top`` shows, as data: the loop's last tick and the last actions."""
    from mien.agent.adapt.feeds import STATUS_FILE
    from mien.agent.adapt.ledger import recent_events

    try:
        status = json.loads((root / STATUS_FILE).read_text()[: 4 << 20])
    except (OSError, ValueError):
        status = {}
    state = _open(root)
    try:
        actions = [
            {
                "at": r.ts,
                "event": r.event.removeprefix("adapt.action."),
                "rule": r.detail.get("rule"),
                "action": r.detail.get("action"),
                "note": r.detail.get("error")
                or r.detail.get("reason")
                or r.detail.get("suppressed_by")
                or r.detail.get("why")
                or r.detail.get("message")
                or "",
            }
            for r in recent_events(state, "action.", 8)
        ]
    finally:
        state.close()
    return {"now": time.time(), "status": status, "actions": actions}


def frame(data: dict[str, Any]) -> Any:
    """One screen of ``mien top``."""
    from rich.console import Group
    from rich.table import Table

    now, status = data["now"], data["status"]
    title = (
        f"persona {status.get('persona') or '-'}, sampled {_age(now - status['ts'])} ago, "
        f"every {status.get('interval')}s"
        if status
        else "the adaptation loop has not run on this machine yet"
    )
    metrics = Table(title=title, title_justify="left")
    for column in ("metric", "value", "baseline", "anomaly (z)"):
        metrics.add_column(column)
    baseline, anomaly = status.get("baseline") or {}, status.get("anomaly") or {}
    for name, value in sorted((status.get("metrics") or {}).items()):
        metrics.add_row(
            name, _number(value), _number(baseline.get(name)), _number(anomaly.get(name))
        )
    rules = Table(title="rules", title_justify="left")
    for column in ("rule", "phase", "for"):
        rules.add_column(column)
    for name, info in sorted((status.get("rules") or {}).items()):
        since = info.get("since")
        rules.add_row(name, str(info.get("phase")), _age(now - since) if since else "-")
    sources = Table(title="data sources", title_justify="left")
    for column in ("source", "age", "last error"):
        sources.add_column(column)
    raw = status.get("sources") or {}
    items = raw.get("sources", raw) if isinstance(raw, dict) else {}
    for name, info in sorted(items.items()) if isinstance(items, dict) else []:
        info = info if isinstance(info, dict) else {}
        fetched = info.get("fetched_at") or info.get("fetched")
        age = _age(now - float(fetched)) if isinstance(fetched, int | float) else "-"
        sources.add_row(name, age, str(info.get("error") or info.get("last_error") or "-"))
    actions = Table(title="last actions", title_justify="left")
    for column in ("when", "rule", "action", "what", "note"):
        actions.add_column(column)
    for item in data["actions"]:
        actions.add_row(
            _age(now - item["at"]) + " ago",
            str(item["rule"] or "-"),
            str(item["action"] or "-"),
            item["event"],
            str(item["note"])[:80],
        )
    return Group(metrics, rules, sources, actions)


def top_cmd(
    root: Path = ROOT,
    once: bool = typer.Option(False, "--once", help="Print one frame and exit."),
    output: OutputFormat = typer.Option(
        OutputFormat.table, "--output", help="json: one frame as a JSON object (with --once)."
    ),
) -> None:
    """Live view of the adaptation loop: metrics with baselines and anomalies, each rule's
    phase and time in it, data sources, and the last actions.

    Examples:
      mien top --root /srv/vm1
      mien top --once --output json
    """
    root = root.absolute()
    if output is OutputFormat.json:
        common.print_json(snapshot(root))
        return
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if once:
        console.print(frame(snapshot(root)))
        return
    try:
        with Live(frame(snapshot(root)), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(_refresh(root))
                live.update(frame(snapshot(root)), refresh=True)
    except KeyboardInterrupt:
        return


def _refresh(root: Path) -> float:
    from mien.agent.adapt.feeds import STATUS_FILE

    try:
        return max(0.5, float(json.loads((root / STATUS_FILE).read_text()[: 1 << 20])["interval"]))
    except (OSError, ValueError, KeyError, TypeError):
        return 2.0


def register(app: typer.Typer) -> None:
    app.command("events")(events_cmd)
    app.command("top")(top_cmd)
