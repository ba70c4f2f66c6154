"""The metric names rule conditions may read, and the learning domain each belongs to.

A condition reads ``metrics.cpu_percent`` or, for a name with a free-text part after a
colon, ``metrics["disk_percent:/"]`` (``baseline`` and ``anomaly`` use the same names).
The spec uses this table to reject a rule that reads an unknown metric or a metric of a
learning domain the persona does not grant; the agent's collectors produce exactly these
names, and only for granted domains. :mod:`mien.rules.domains` re-exports it for them.

Units: ``*_percent`` and ``api_error_rate`` are percentages (0–100), ``*_bps`` bytes per
second, ``*_ms`` milliseconds, ``*_per_min`` counts per minute, ``process_up:NAME`` is 1 or
0, ``memory_total_mib`` is the machine's memory in MiB (with ``cpu_count``, its size: what
the server compares with a persona's ``resource_requirements``), the rest are plain counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOMAINS: dict[str, tuple[str, ...]] = {
    "metrics": (
        "cpu_percent",
        "load_1m",
        "load_5m",
        "memory_percent",
        "swap_percent",
        "cpu_count",
        "memory_total_mib",
        "disk_percent:<mount>",
        "net_rx_bps",
        "net_tx_bps",
        "latency_ms:<probe>",
    ),
    "system_logs": ("log_errors_per_min:<name>",),
    "network_traffic": (
        "iface_rx_bps:<iface>",
        "iface_tx_bps:<iface>",
        "connections:<port>",
        "connections_total",
    ),
    "api_calls": (
        "api_rps",
        "api_error_rate",
        "api_latency_p50_ms",
        "api_latency_p95_ms",
        "api_latency_p99_ms",
    ),
    "processes": ("process_count", "process_up:<name>", "top_cpu_percent"),
    "file_access": ("file_changes_per_min:<name>",),
    "auth_events": (
        "auth_failures_per_min",
        "auth_successes_per_min",
        "firewall_blocks_per_min",
        "scan_findings",
    ),
}

_EXACT: dict[str, str] = {}
_PREFIX: dict[str, str] = {}
for _domain, _names in DOMAINS.items():
    for _name in _names:
        if ":" in _name:
            _PREFIX[_name.split(":", 1)[0]] = _domain
        else:
            _EXACT[_name] = _domain


def domain_of(name: str) -> str | None:
    """The learning domain a metric name belongs to, or None for a name nobody produces."""
    if name in _EXACT:
        return _EXACT[name]
    head, colon, rest = name.partition(":")
    if colon and rest:
        return _PREFIX.get(head)
    return None


def known_names() -> list[str]:
    """Every name as the table writes it (``disk_percent:<mount>``), for messages."""
    return [name for names in DOMAINS.values() for name in names]


# ``metrics.cpu_percent``, ``metrics["disk_percent:/"]``, ``baseline['x']``, ``anomaly.y``.
_REF = re.compile(
    r"\b(?P<var>metrics|baseline|anomaly)\s*(?:\.\s*(?P<dot>[A-Za-z_]\w*)"
    r"|\[\s*(?:\"(?P<dq>[^\"\\]*)\"|'(?P<sq>[^'\\]*)')\s*\])"
)


@dataclass(frozen=True, slots=True)
class MetricRef:
    """One metric a condition reads, with its 0-based offset in the condition text."""

    variable: str
    name: str
    offset: int


def metric_refs(source: str) -> list[MetricRef]:
    """The metric names a condition reads through ``metrics``, ``baseline`` or ``anomaly``.

    Found in the text (a computed key such as ``metrics[k]`` is not seen); string literals
    elsewhere in the condition could in theory look like a reference, which only makes the
    check stricter.
    """
    out: list[MetricRef] = []
    for m in _REF.finditer(source):
        name = m.group("dot") or m.group("dq") or m.group("sq") or ""
        out.append(MetricRef(m.group("var"), name, m.start()))
    return out
