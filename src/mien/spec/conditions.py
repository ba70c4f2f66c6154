"""CEL conditions: the one environment every rule condition is compiled in.

A persona's ``adaptation_rules[].when`` is a CEL expression (the Common Expression Language
of Kubernetes admission policies, Envoy and cloud IAM), run by ``cel-expr-python``, the CEL
project's C++ runtime. The spec compiles each condition when a document is validated, so a
syntax error is reported with its column before any agent sees it. :mod:`mien.rules`
evaluates them with this same environment.

Variables a condition sees (maps, values of any type, except ``now``):
``metrics`` (sampled numbers such as ``cpu_percent``, see :mod:`mien.spec.metrics`),
``events``, ``baseline`` (learned averages), ``anomaly`` (z-scores against the baseline),
``priority`` (the persona's ``priority_metrics``), ``trust`` (its ``trust_levels``),
``persona`` (name, labels), ``data`` (external data sources by name; in a source's own
``when``, that source's data) and ``now`` (epoch seconds, a number).

A fleet rule (evaluated by the server's orchestrator over the instances a tag selector
matches) is compiled in a second environment, ``kind="fleet"``, whose variables are the
aggregates of :data:`FLEET_MAPS` (metric or rule name → number) and the numbers ``count``
and ``now``; see docs/orchestrator.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

VARIABLES = (
    "metrics",
    "events",
    "baseline",
    "anomaly",
    "priority",
    "trust",
    "persona",
    "data",
    "now",
)

FLEET_MAPS = (
    "avg",
    "min",
    "max",
    "sum",
    "p50",
    "p90",
    "p95",
    "p99",
    "reporting",
    "firing",
    "firing_fraction",
)
"""Fleet-rule variables that are maps: the first eight by metric name, ``reporting`` (how
many matching instances have a fresh value of a metric) by metric name, ``firing`` and
``firing_fraction`` by machine-rule name."""
FLEET_VARIABLES = (*FLEET_MAPS, "count", "now")
KINDS = {"persona": VARIABLES, "fleet": FLEET_VARIABLES}
NUMBERS = ("now", "count")
"""Variables that are numbers, not maps (``count`` exists only in fleet rules)."""

_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")


@dataclass
class ConditionError(Exception):  # not frozen: context managers set __traceback__
    """A condition that does not compile: message and 1-based line/column inside it."""

    message: str
    line: int
    column: int

    def __str__(self) -> str:
        return self.message


@cache
def environment(kind: str = "persona") -> Any:
    """The CEL environment of ``kind`` (``persona`` or ``fleet``), built once per process
    (it costs about a millisecond)."""
    from cel_expr_python import cel

    dyn_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
    variables = dict.fromkeys(KINDS[kind], dyn_map)
    variables["now"] = cel.Type.DOUBLE
    if "count" in variables:  # a number compared with ints and doubles alike: `count >= 3`
        variables["count"] = cel.Type.DYN
    return cel.NewEnv(variables=variables)


@cache
def compile_condition(source: str, kind: str = "persona") -> Any:
    """Compile ``source`` to a CEL program, or raise :class:`ConditionError`.

    Cached: a fleet of personas shares a handful of distinct conditions.
    """
    from cel_expr_python import cel

    if not source.strip():
        raise ConditionError("empty condition", 1, 1)
    try:
        program = environment(kind).compile(source)
    except RuntimeError as exc:
        raise _translate(str(exc), KINDS[kind]) from None
    returns = program.return_type()
    if returns not in (cel.Type.BOOL, cel.Type.DYN):
        raise ConditionError(
            f"condition must be true or false, but this expression gives {returns.name().lower()}",
            1,
            1,
        )
    return program


def _translate(text: str, names: tuple[str, ...] = VARIABLES) -> ConditionError:
    # cel-cpp reports "ERROR: <input>:LINE:COL: message\n | source\n | ...^"; there may be
    # several; the first is the one to fix first.
    for raw in text.splitlines():
        m = _POSITION.search(raw)
        if m:
            message = m.group(3).strip()
            message = message.replace("(in container '')", "").strip()
            message = re.sub(r"\s*\[[A-Z_]+\]$", "", message)  # status code suffix
            message = re.sub(r"\w+ input '<EOF>' expecting \{.*\}", "unexpected end", message)
            message = re.sub(r"\w+ input ('.*?') expecting \{.*\}", r"unexpected \1", message)
            if message.startswith("undeclared reference to"):
                message += f" (conditions can use {', '.join(names)})"
            return ConditionError(message, int(m.group(1)), int(m.group(2)))
    return ConditionError(text.strip().splitlines()[0] if text.strip() else "invalid", 1, 1)
