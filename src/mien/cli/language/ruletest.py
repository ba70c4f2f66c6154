"""What ``mien rules test`` does, as pure functions: read samples, step the rules, report.

Used by :mod:`mien.cli.language.rules` (which does the file reading and printing) and by
its tests. Samples are JSON: a list of ``{"at": SECONDS, "metrics": {...}, "events":
{...}, "baseline": {...}, "anomaly": {...}}`` (or one such object); ``at`` defaults to the
previous sample's plus one second (the first: 0) and may not go back in time. Every
problem names the file and the sample: ``samples.json: samples[2].metrics.cpu_percent:
must be a number``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from mien.rules import Inputs, Intent, RuleSet, RuleState, Step, source_data
from mien.rules.trust import granted
from mien.spec.actions import ACTIONS, params_of
from mien.spec.models import Persona

MAPS = ("metrics", "events", "baseline", "anomaly")


class SampleError(ValueError):
    """A sample file that cannot be used; the message names the file and the place."""


def parse_samples(text: str, source: str) -> list[Inputs]:
    """Samples from JSON text, in order, or :class:`SampleError`."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SampleError(f"{source}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise SampleError(f"{source}: no samples (give a list of objects, or one object)")
    out: list[Inputs] = []
    at = -1.0
    for i, item in enumerate(items):
        where = f"{source}: samples[{i}]"
        if not isinstance(item, dict):
            raise SampleError(f"{where}: must be an object with metrics, events, …")
        unknown = sorted(set(item) - {"at", *MAPS})
        if unknown:
            raise SampleError(
                f"{where}.{unknown[0]}: unknown key (a sample has at, {', '.join(MAPS)})"
            )
        now = item.get("at", at + 1 if at >= 0 else 0.0)
        if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
            raise SampleError(f"{where}.at: must be a number of seconds")
        if now < at:
            raise SampleError(f"{where}.at: {now:g} is before the previous sample ({at:g})")
        at = float(now)
        maps: dict[str, dict[str, float]] = {}
        for name in MAPS:
            value = item.get(name, {})
            if not isinstance(value, dict):
                raise SampleError(f"{where}.{name}: must be an object of name: number")
            for key, number in value.items():
                if isinstance(number, bool) or not isinstance(number, int | float):
                    raise SampleError(f"{where}.{name}.{key}: must be a number")
            maps[name] = {str(k): float(v) for k, v in value.items()}
        out.append(Inputs(**maps, now=at))
    return out


def parse_data(text: str, parse: str, source: str) -> Any:
    """A data source's payload as the agent parses it: lines, JSON or text."""
    if parse == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SampleError(f"{source}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    if parse == "lines":
        return [s for s in (line.strip() for line in text.splitlines()) if s and s[0] != "#"]
    return text


@dataclass
class Run:
    """The outcome of stepping a persona's rules over samples."""

    rules: RuleSet
    steps: list[tuple[float, Step]] = field(default_factory=list)
    states: dict[str, RuleState] = field(default_factory=dict)

    @property
    def fired(self) -> bool:
        """True when a rule went to firing (or a data source acted) during the samples."""
        return any(
            step.fire
            or any(
                t.to == "firing" and t.from_ in ("inactive", "pending") for t in step.transitions
            )
            for _, step in self.steps
        )


def run(persona: Persona, samples: list[Inputs], data: dict[str, Any]) -> Run:
    """Step every rule of ``persona`` over ``samples`` (``data``: source name → payload)."""
    rules = RuleSet.compile(persona)
    result = Run(rules)
    for sample in samples:
        entries = {
            name: source_data(value, age=0.0, changed_at=samples[0].now)
            for name, value in data.items()
        }
        inputs = Inputs(
            metrics=sample.metrics,
            events=sample.events,
            baseline=sample.baseline,
            anomaly=sample.anomaly,
            data=entries,
            now=sample.now,
        )
        step = rules.step(inputs, result.states)
        result.states = step.states
        result.steps.append((sample.now, step))
    return result


def intent_dict(intent: Intent) -> dict[str, Any]:
    return {
        "rule": intent.rule,
        "action": intent.name,
        "params": intent.params,
        "via": intent.via,
        "risk": intent.risk,
        "needs": intent.needed,
        "allowed": intent.allowed,
        "refused": intent.refused,
        "suppressed_by": intent.suppressed_by,
        "cooldown_until": intent.cooldown_until,
        "runs": intent.runs,
    }


def report(result: Run, persona: Persona) -> dict[str, Any]:
    """Everything ``rules test`` shows, as data (the ``--output json`` document)."""
    last = result.steps[-1][1] if result.steps else None
    rules = []
    for name in result.rules.names():
        state = result.states[name]
        actions = []
        for act in result.rules.actions_of(name):
            spec = ACTIONS[act.action or ""]
            actions.append(
                {
                    "action": spec.name,
                    "params": params_of(act),
                    "risk": spec.risk,
                    "needs": spec.needs,
                    "granted": granted(persona.trust_levels, spec.risk) if spec.risk else None,
                    "allowed": _allowed(persona, spec.risk, spec.needs),
                }
            )
        rules.append(
            {
                "rule": name,
                "phase": state.phase,
                "since": state.since,
                "when": state.truth,
                "why": last.notes.get(name, "") if last else "",
                "unknown": list(last.unknown.get(name, ())) if last else [],
                "actions": actions,
            }
        )
    return {
        "persona": persona.name,
        "samples": len(result.steps),
        "fired": result.fired,
        "steps": [
            {
                "at": at,
                "transitions": [
                    {"rule": t.rule, "from": t.from_, "to": t.to, "why": t.why, "when": t.truth}
                    for t in step.transitions
                ],
                "fire": [intent_dict(i) for i in step.fire],
                "resolved": step.resolved,
            }
            for at, step in result.steps
        ],
        "rules": rules,
    }


def _allowed(persona: Persona, risk: str | None, needs: str) -> bool:
    from mien.rules.trust import allowed

    return allowed(persona.trust_levels, risk, needs)


def verdict(item: dict[str, Any]) -> str:
    """How an intent ended, in words."""
    if not item["allowed"]:
        return f"refused: {item['refused']}"
    if item["suppressed_by"]:
        return f"suppressed by {item['suppressed_by']} (a heavier priority)"
    if item["cooldown_until"] is not None:
        return f"cooling down until {item['cooldown_until']:g}s"
    return "would run"


def describe(action: str, params: dict[str, Any]) -> str:
    """``set_setting os_settings.power_profile=performance``."""
    shown = {k: v for k, v in params.items() if k not in ("addresses",)}
    if "addresses" in params:
        count = len(params["addresses"] or [])
        shown["addresses"] = f"{count} address{'es' if count != 1 else ''}"
    if action == "set_setting" and "key" in shown:
        key = shown.pop("key")
        if "value" in shown:
            return f"set_setting {key}={json.dumps(shown['value'])}"
        return f"set_setting {key} from {shown.get('from')}"
    return " ".join([action, *(f"{k}={v}" for k, v in shown.items())])


def text_lines(doc: dict[str, Any]) -> list[str]:
    """The text report: what happened at each sample, then each rule where it stands."""
    out: list[str] = []
    for step in doc["steps"]:
        if not (step["transitions"] or step["fire"] or step["resolved"]):
            continue
        out.append(f"at {step['at']:g}s")
        for t in step["transitions"]:
            out.append(f"  {t['rule']}: {t['from']} → {t['to']}: {t['why']}")
        for item in step["fire"]:
            via = f" (via {item['via']})" if item["via"] else ""
            out.append(f"    {describe(item['action'], item['params'])}{via}: {verdict(item)}")
        for name in step["resolved"]:
            out.append(f"  {name}: resolved: its automated changes would be reverted")
    if out:
        out.append("")
    out.append(f"after {doc['samples']} sample{'s' if doc['samples'] != 1 else ''}:")
    for rule in doc["rules"]:
        out.append(
            f"  {rule['rule']}: {rule['phase']} since {rule['since']:g}s, when {rule['when']}"
        )
        if rule["why"]:
            out.append(f"    {rule['why']}")
        for act in rule["actions"]:
            trust = (
                "needs no trust"
                if act["risk"] is None
                else f"needs {act['risk']} {act['needs']}, granted {act['granted']}"
            )
            word = "allowed" if act["allowed"] else "refused"
            out.append(f"    then {describe(act['action'], act['params'])}: {word} ({trust})")
    return out
