"""A compiled condition, decided as true, false or unknown against one set of inputs.

Used by :mod:`mien.rules.engine` for every ``when`` and ``clear_when``. Two ways to decide:

* **plain thresholds** (``metrics.cpu_percent > 80.0``, ``a > 1 && b < 2 || c >= 3``,
  operands a number or a ``metrics``/``baseline``/``anomaly``/``events``/``priority``
  reference) are decided in Python, with CEL's semantics: a comparison over a missing or
  non-numeric value is unknown, ``false && unknown`` is false, ``true || unknown`` is true.
  This is about a hundred times faster than a CEL evaluation.
* anything else is evaluated by the CEL program compiled by :mod:`mien.spec.conditions`;
  a missing key (CEL's "no such key") or a type error gives unknown, with the reason.

Either way a condition remembers the inputs it last decided on: when the values it reads
did not change, the last answer is reused without evaluating anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mien.spec.conditions import compile_condition, environment

Truth = Literal["true", "false", "unknown"]

_REF = re.compile(
    r"^(?P<var>metrics|baseline|anomaly|events|priority)\s*"
    r"(?:\.\s*(?P<dot>[A-Za-z_]\w*)|\[\s*(?:\"(?P<dq>[^\"\\]*)\"|'(?P<sq>[^'\\]*)')\s*\])$"
)
_NUM = re.compile(r"^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$")
_CMP = re.compile(r"^(?P<left>.+?)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<right>.+?)$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
# Which variables a CEL condition reads (to know when its inputs changed).
_READS = re.compile(r"\b(metrics|events|baseline|anomaly|priority|trust|persona|data|now)\b")

Operand = tuple[str, str] | float  # (variable, key) or a constant


@dataclass(frozen=True, slots=True)
class Decision:
    """What a condition gave: the truth, and why it is unknown (missing inputs, errors)."""

    truth: Truth
    unknown: tuple[str, ...] = ()


TRUE = Decision("true")
FALSE = Decision("false")


def _operand(text: str) -> Operand | None:
    text = text.strip()
    if _NUM.match(text):
        return float(text)
    m = _REF.match(text)
    if m:
        return (m.group("var"), m.group("dot") or m.group("dq") or m.group("sq") or "")
    return None


def _label(var: str, key: str) -> str:
    return f"{var}.{key}" if re.fullmatch(r"[A-Za-z_]\w*", key) else f'{var}["{key}"]'


_KEY_STRING = re.compile(r"\[\s*(\"[^\"\\]*\"|'[^'\\]*')\s*\]")
_NOT_PLAIN = re.compile(r"[()\"'?:]|!(?!=)")


def _split(text: str, sep: str) -> list[str] | None:
    """Split on ``||``; None when the text has parentheses, negation, a ternary or a
    string other than a bracketed key (not a plain threshold)."""
    if _NOT_PLAIN.search(_KEY_STRING.sub("[]", text)):
        return None
    return text.split(sep)


def plain(source: str) -> list[list[tuple[Operand, str, Operand]]] | None:
    """``a > 1 && b < 2 || c >= 3`` as an OR of ANDs of comparisons, or None."""
    ors = _split(source, "||")
    if ors is None:
        return None
    out: list[list[tuple[Operand, str, Operand]]] = []
    for alternative in ors:
        ands: list[tuple[Operand, str, Operand]] = []
        for clause in alternative.split("&&"):
            m = _CMP.match(clause.strip())
            if not m:
                return None
            left, right = _operand(m.group("left")), _operand(m.group("right"))
            if left is None or right is None:
                return None
            ands.append((left, m.group("op"), right))
        out.append(ands)
    return out


class Condition:
    """One compiled condition (a rule's ``when`` or ``clear_when``)."""

    __slots__ = ("_cache", "_clauses", "_keys", "_program", "_reads", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._program: Any = compile_condition(source)  # validates, even on the fast path
        self._clauses = plain(source)
        self._cache: tuple[Any, Decision] | None = None
        if self._clauses is not None:
            keys: list[tuple[str, str]] = []
            for ands in self._clauses:
                for left, _, right in ands:
                    keys.extend(x for x in (left, right) if isinstance(x, tuple))
            self._keys: tuple[tuple[str, str], ...] = tuple(dict.fromkeys(keys))
            self._reads: tuple[str, ...] = ()
        else:
            self._keys = ()
            self._reads = tuple(dict.fromkeys(_READS.findall(source)))

    @property
    def is_plain(self) -> bool:
        return self._clauses is not None

    def reads(self) -> tuple[tuple[str, str], ...]:
        """The (variable, key) pairs a plain condition reads (empty for a CEL one)."""
        return self._keys

    def decide(self, scope: Mapping[str, Any], activation: Callable[[], Any]) -> Decision:
        """Decide against ``scope`` (variable → value); ``activation()`` builds the CEL
        activation lazily, once per step, shared by every CEL condition."""
        if self._clauses is not None:
            values = tuple(_get(scope, var, key) for var, key in self._keys)
            fingerprint: Any = values
        else:
            fingerprint = tuple(scope.get(var) for var in self._reads)
        cached = self._cache
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        if self._clauses is not None:
            decision = self._plain(dict(zip(self._keys, values, strict=True)))
        else:
            decision = self._cel(activation())
        self._cache = (fingerprint, decision)
        return decision

    def _plain(self, values: Mapping[tuple[str, str], Any]) -> Decision:
        assert self._clauses is not None
        missing: list[str] = []
        any_unknown = False
        for ands in self._clauses:
            result: Truth = "true"
            for left, op, right in ands:
                a = values[left] if isinstance(left, tuple) else left
                b = values[right] if isinstance(right, tuple) else right
                if not _number(a) or not _number(b):
                    for side, v in ((left, a), (right, b)):
                        if isinstance(side, tuple) and not _number(v):
                            word = "missing" if v is _MISSING else "not a number"
                            missing.append(f"{_label(*side)} {word}")
                    result = "unknown" if result == "true" else result
                    continue
                if not _OPS[op](a, b):
                    result = "false"
                    break
            if result == "true":
                return TRUE
            any_unknown = any_unknown or result == "unknown"
        if any_unknown:
            return Decision("unknown", tuple(dict.fromkeys(missing)))
        return FALSE

    def _cel(self, activation: Any) -> Decision:
        try:
            value = self._program.eval(activation)
        except Exception as exc:  # the runtime's own failure: shown, never raised
            return Decision("unknown", (f"error: {exc}",))
        kind = value.type().name()
        if kind == "BOOL":
            return TRUE if value.value() else FALSE
        if kind == "ERROR":
            return Decision("unknown", (_reason(str(value.value())),))
        return Decision("unknown", (f"gives {kind.lower()}, not true or false",))


_MISSING = object()


def _get(scope: Mapping[str, Any], var: str, key: str) -> Any:
    table = scope.get(var)
    if table is None:
        return _MISSING
    return table.get(key, _MISSING)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_NOT_FOUND = re.compile(r'Key not found in map\s*:\s*"?(.*?)"?\s*$')


def _reason(text: str) -> str:
    m = _NOT_FOUND.search(text)
    if m:
        return f"{m.group(1)} missing"
    if "No matching overloads" in text:
        return "a value of the wrong type (" + text.split(":", 1)[-1].strip() + ")"
    return text


def activation_for(scope: Mapping[str, Any]) -> Any:
    """The CEL activation for one step's variables."""
    return environment().Activation(dict(scope))


__all__ = ["FALSE", "TRUE", "Condition", "Decision", "Truth", "activation_for", "plain"]
