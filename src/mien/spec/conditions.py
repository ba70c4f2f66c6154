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
def environment() -> Any:
    """The CEL environment, built once per process (it costs about a millisecond)."""
    from cel_expr_python import cel

    dyn_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
    variables = dict.fromkeys(VARIABLES, dyn_map)
    variables["now"] = cel.Type.DOUBLE
    return cel.NewEnv(variables=variables)


@cache
def compile_condition(source: str) -> Any:
    """Compile ``source`` to a CEL program, or raise :class:`ConditionError`.

    Cached: a fleet of personas shares a handful of distinct conditions.
    """
    from cel_expr_python import cel

    if not source.strip():
        raise ConditionError("empty condition", 1, 1)
    try:
        program = environment().compile(source)
    except RuntimeError as exc:
        raise _translate(str(exc)) from None
    kind = program.return_type()
    if kind not in (cel.Type.BOOL, cel.Type.DYN):
        raise ConditionError(
            f"condition must be true or false, but this expression gives {kind.name().lower()}",
            1,
            1,
        )
    return program


def _translate(text: str) -> ConditionError:
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
                message += f" (conditions can use {', '.join(VARIABLES)})"
            return ConditionError(message, int(m.group(1)), int(m.group(2)))
    return ConditionError(text.strip().splitlines()[0] if text.strip() else "invalid", 1, 1)
