"""The small grammar that reads rules written in words, as the example personas write them.

``Condition: CPU Load > 80% for 5 minutes`` becomes ``when: metrics.cpu_percent > 80.0``
with ``for: 5m``; ``Action: Scale up to 16 cores`` becomes ``{action: scale, cpu: 16}``;
``IF CPU utilization > 90% AND priority_metrics[performance] > priority_metrics[security]
THEN increase allocated cores`` becomes a whole rule. An action phrase the grammar does not
know becomes a named automated response (``Activate CDN caching`` →
``{respond: activate-cdn-caching}``), which the agent reports as "no handler" until the
persona defines it under ``automated_responses``. ``mien render`` prints the result.

Grammar (case does not matter)::

    rule       := "IF" condition "THEN" action ("AND" action)*
    condition  := clause (("AND" | "OR") clause)* ["for" duration]
    clause     := operand op operand
    operand    := metric-phrase | "priority_metrics[" name "]" | number [unit]
    op         := ">" | ">=" | "<" | "<=" | "==" | "!=" | "above" | "over" | "exceeds"
                | "below" | "under"
    unit       := "%" | "ms" | "s"

Metric phrases are listed in :data:`METRICS`.
"""

from __future__ import annotations

import re
from typing import Any

METRICS: dict[str, tuple[str, str]] = {
    # phrase: (CEL reference, unit the metric is measured in); names as mien.spec.metrics
    "cpu load": ("metrics.cpu_percent", "%"),
    "cpu utilization": ("metrics.cpu_percent", "%"),
    "cpu utilisation": ("metrics.cpu_percent", "%"),
    "cpu usage": ("metrics.cpu_percent", "%"),
    "cpu": ("metrics.cpu_percent", "%"),
    "memory usage": ("metrics.memory_percent", "%"),
    "memory utilization": ("metrics.memory_percent", "%"),
    "memory": ("metrics.memory_percent", "%"),
    "disk usage": ('metrics["disk_percent:/"]', "%"),
    "disk": ('metrics["disk_percent:/"]', "%"),
    "load average": ("metrics.load_1m", ""),
    "network latency": ('metrics["latency_ms:default"]', "ms"),
    "latency": ('metrics["latency_ms:default"]', "ms"),
    "error rate": ("metrics.api_error_rate", "%"),
    "error rates": ("metrics.api_error_rate", "%"),
    "threat detection rate": ("metrics.scan_findings", ""),
    "network throughput": ("metrics.net_rx_bps", ""),
    "processes": ("metrics.process_count", ""),
    "process count": ("metrics.process_count", ""),
}

_OPS = {
    ">": ">",
    ">=": ">=",
    "<": "<",
    "<=": "<=",
    "==": "==",
    "=": "==",
    "!=": "!=",
    "above": ">",
    "over": ">",
    "exceeds": ">",
    "below": "<",
    "under": "<",
}
_CLAUSE = re.compile(
    r"^\s*(?P<left>.+?)\s*(?P<op>>=|<=|==|!=|>|<|=|\babove\b|\bover\b|\bexceeds\b|\bbelow\b|\bunder\b)"
    r"\s*(?P<right>.+?)\s*$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^(-?\d+(?:\.\d+)?)\s*(%|ms|s|sec|seconds?|milliseconds?)?$", re.IGNORECASE)
_PRIORITY = re.compile(r"^priority_metrics\[\s*['\"]?([A-Za-z_][\w]*)['\"]?\s*\]$", re.IGNORECASE)
_FOR = re.compile(r"\s+for\s+(\d+(?:\.\d+)?\s*[a-z]+)\s*$", re.IGNORECASE)
_RULE = re.compile(
    r"^\s*if\s+(?P<cond>.+?)\s+then\s+(?P<act>.+?)\.?\s*$", re.IGNORECASE | re.DOTALL
)


class PhraseError(ValueError):
    """A phrase the grammar cannot read; the message says what it expected."""


def slug(text: str) -> str:
    """``Activate CDN caching`` → ``activate-cdn-caching`` (a response or rule name)."""
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return out[:63].rstrip("-") or "response"


def _operand(text: str) -> tuple[str, str | None]:
    """CEL for one side of a comparison, and the unit the number carried (if a number)."""
    text = text.strip()
    m = _PRIORITY.match(text)
    if m:
        return f"priority.{m.group(1).lower()}", None
    m = _NUMBER.match(text)
    if m:
        value = float(m.group(1))
        unit = (m.group(2) or "").lower()
        if unit.startswith("s"):
            value, unit = value * 1000, "ms"
        elif unit.startswith("milli"):
            unit = "ms"
        return repr(value), unit
    key = " ".join(text.lower().split())
    if key in METRICS:
        return METRICS[key][0], None
    if re.match(r"^(metrics|baseline|anomaly|priority|trust|events|persona|data)\.\w+$", text):
        return text, None
    known = ", ".join(sorted({k for k in METRICS if " " in k}))
    raise PhraseError(f"unknown metric {text!r}; known phrases: {known}")


def _clause(text: str) -> str:
    m = _CLAUSE.match(text)
    if not m:
        raise PhraseError(f"cannot read {text.strip()!r}: expected e.g. 'CPU Load > 80%'")
    left, _ = _operand(m.group("left"))
    right, unit = _operand(m.group("right"))
    metric_unit = next((u for ref, u in METRICS.values() if ref == left), None)
    if unit and metric_unit is not None and metric_unit and unit != metric_unit:
        raise PhraseError(f"{m.group('left').strip()!r} is measured in {metric_unit}, not {unit}")
    return f"{left} {_OPS[m.group('op').lower()]} {right}"


def condition(text: str) -> tuple[str, str | None]:
    """A condition phrase → (CEL expression, ``for`` duration text or None)."""
    duration = None
    m = _FOR.search(text)
    if m:
        duration = m.group(1)
        text = text[: m.start()]
    parts = re.split(r"\s+(and|or|&&|\|\|)\s+", text, flags=re.IGNORECASE)
    cel = _clause(parts[0])
    for i in range(1, len(parts), 2):
        joiner = "&&" if parts[i].lower() in ("and", "&&") else "||"
        cel += f" {joiner} {_clause(parts[i + 1])}"
    return cel, duration


_ACTIONS: list[tuple[re.Pattern[str], Any]] = [
    (
        re.compile(r"^scale (?:up |down )?to (\d+(?:\.\d+)?) (?:cores?|cpus?|vcpus?)$"),
        lambda m: {"action": "scale", "cpu": _num(m.group(1))},
    ),
    (
        re.compile(r"^scale (?:up |down )?(?:memory )?to (\d+(?:\.\d+)?\s*[kmgt]i?b)(?: memory)?$"),
        lambda m: {
            "action": "scale",
            "memory": m.group(1).replace(" ", "").upper().replace("IB", "iB"),
        },
    ),
    (
        re.compile(r"^(?:increase|add) (?:allocated |more )?(?:cores|cpus?)$"),
        lambda m: {"action": "scale", "cpu": "+1"},
    ),
    (
        re.compile(r"^(?:decrease|reduce) (?:allocated )?(?:cores|cpus?)$"),
        lambda m: {"action": "scale", "cpu": "-1"},
    ),
    (
        re.compile(r"^(?:update firewall rules to )?block (?:the )?malicious ips?$"),
        lambda m: {"action": "firewall_block", "from": "data"},
    ),
    (
        re.compile(r"^restart (?:the )?([a-z0-9@._-]+)(?: service)?$"),
        lambda m: {"action": "restart_service", "service": m.group(1)},
    ),
    (
        re.compile(r"^(?:switch|shift) (?:persona )?to (?:persona )?([a-z0-9._-]+)$"),
        lambda m: {"action": "switch_persona", "persona": m.group(1)},
    ),
    (
        re.compile(r"^(?:notify|alert) (.+)$"),
        lambda m: {"action": "notify", "message": m.group(1)},
    ),
]


def _num(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def action(text: str) -> dict[str, Any]:
    """An action phrase → one action; unknown phrases become a named response."""
    key = " ".join(text.strip().rstrip(".").lower().split())
    for pattern, build in _ACTIONS:
        m = pattern.match(key)
        if m:
            result: dict[str, Any] = build(m)
            return result
    return {"respond": slug(key)}


def actions(text: str) -> list[dict[str, Any]]:
    """``A and B`` → two actions."""
    return [action(part) for part in re.split(r"\s+and\s+|;\s*", text, flags=re.IGNORECASE)]


def rule(text: str) -> dict[str, Any]:
    """``IF <condition> THEN <actions>`` → a canonical rule mapping."""
    m = _RULE.match(text)
    if not m:
        raise PhraseError(
            "a rule in words reads 'IF <condition> THEN <action>', e.g. "
            "'IF CPU utilization > 90% THEN increase allocated cores'"
        )
    when, duration = condition(m.group("cond"))
    out: dict[str, Any] = {
        "name": slug(m.group("cond")),
        "when": when,
        "then": actions(m.group("act")),
    }
    if duration:
        out["for"] = duration
    return out
