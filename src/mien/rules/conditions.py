"""A compiled condition, decided as true, false or unknown against one set of inputs.

Used by :mod:`mien.rules.engine` for every ``when`` and ``clear_when``. Each condition is
compiled by CEL (:mod:`mien.spec.conditions`) and, when it is in the common subset, also
by :mod:`mien.rules.fastpath`, which decides it in Python with CEL's semantics. A missing
key or a type error gives ``unknown`` with the reason, never an exception.

A condition remembers the inputs it last decided on: when the values it reads did not
change, the last answer is reused without evaluating anything. The CEL activation holds
only the variables (and, where the keys are known, only the keys) a condition reads, so a
large data source or metric table is not converted for conditions that do not look at it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mien.rules.fastpath import Fallback, Missing, compile_fast, label
from mien.spec.conditions import FLEET_MAPS, NUMBERS, compile_condition

Truth = Literal["true", "false", "unknown"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What a condition gave: the truth, and why it is unknown (missing inputs, errors)."""

    truth: Truth
    unknown: tuple[str, ...] = ()


TRUE = Decision("true")
FALSE = Decision("false")

_KEY = r"(?:\.\s*(?P<dot>[A-Za-z_]\w*)|\[\s*(?:\"(?P<dq>[^\"\\]*)\"|'(?P<sq>[^'\\]*)')\s*\])"


class _Kind:
    """The variables of one kind of condition, as the pattern matching needs them:
    ``maps`` read by key, ``other`` maps only CEL reads, ``scalars`` numbers, ``fast``
    the maps the fast path may evaluate."""

    def __init__(
        self, maps: tuple[str, ...], other: tuple[str, ...], scalars: tuple[str, ...]
    ) -> None:
        self.scalars = scalars
        self.fast = tuple(m for m in maps if m != "trust")
        self.reads = re.compile(r"\b(" + "|".join((*maps, *other, *scalars)) + r")\b")
        self.keyed = re.compile(r"\b(?P<var>" + "|".join(maps) + r")\s*" + _KEY)


_KINDS = {
    "persona": _Kind(
        ("metrics", "events", "baseline", "anomaly", "priority", "trust"),
        ("persona", "data"),
        ("now",),
    ),
    "fleet": _Kind(FLEET_MAPS, (), ("count", "now")),
}
_MISSING = object()


def _reads(source: str, kind: _Kind) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """What a condition reads: (variable, key) pairs where a map is only ever read at
    constant keys (``metrics.x``, ``metrics["x"]``), and the variables read whole."""
    keyed = [
        (m.group("var"), m.group("dot") or m.group("dq") or m.group("sq") or "")
        for m in kind.keyed.finditer(source)
    ]
    whole = {v for v in kind.reads.findall(kind.keyed.sub(" ", source)) if v not in NUMBERS}
    return (
        tuple(dict.fromkeys((v, k) for v, k in keyed if v not in whole)),
        tuple(sorted(whole)),
    )


def _split_top(source: str) -> tuple[str, list[str]] | None:
    """``a && b && c`` → ("&&", [a, b, c]) at the top level (likewise ``||``), or None."""
    depth, quote, i = 0, "", 0
    cuts: dict[str, list[int]] = {"&&": [], "||": []}
    while i < len(source):
        c = source[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and c == "?":
            return None  # a ternary binds looser than && and ||
        elif depth == 0 and source[i : i + 2] in cuts:
            cuts[source[i : i + 2]].append(i)
            i += 1
        i += 1
    op = "||" if cuts["||"] else "&&"
    if not cuts[op]:
        return None
    parts, start = [], 0
    for at in cuts[op]:
        parts.append(source[start:at])
        start = at + 2
    parts.append(source[start:])
    return op, parts


class Condition:
    """One compiled condition (a rule's ``when`` or ``clear_when``)."""

    __slots__ = (
        "_cache",
        "_fast",
        "_guards",
        "_keys",
        "_kind",
        "_now",
        "_numbers",
        "_program",
        "_vars",
        "keyset",
        "last",
        "source",
    )

    def __init__(self, source: str, kind: str = "persona") -> None:
        """Compile ``source`` in the environment of ``kind``: ``persona`` (a persona's
        rules) or ``fleet`` (the orchestrator's rules over aggregates)."""
        self.source = source
        self._program: Any = compile_condition(source, kind)  # raises ConditionError
        self._kind = k = _KINDS[kind]
        fast = compile_fast(source, k.fast, k.scalars)
        self._fast = fast[0] if fast else None
        keys, whole = _reads(source, k)
        self._keys: tuple[tuple[str, str], ...] = fast[1] if fast else keys
        self._vars: tuple[str, ...] = () if fast else whole  # maps read whole
        self._numbers = tuple(n for n in k.scalars if re.search(rf"\b{n}\b", source))
        self._now = "now" in self._numbers
        self._cache: tuple[Any, Decision] | None = None
        self.last: Decision | None = None  # the last decision made
        self.keyset = frozenset(self._keys)
        # For a CEL-only condition, its top-level `&&` (`||`) parts in the fast subset:
        # one of them false (true) decides the whole without CEL, as CEL would.
        self._guards: tuple[bool, list[Any]] | None = None
        split = None if fast else _split_top(source)
        if split is not None:
            parts = (compile_fast(part, k.fast, k.scalars) for part in split[1])
            guards = [g[0] for g in parts if g is not None]
            if guards:
                self._guards = (split[0] == "||", guards)

    @property
    def is_fast(self) -> bool:
        """True when decided in Python (see :mod:`mien.rules.fastpath`)."""
        return self._fast is not None

    @property
    def reads_now(self) -> bool:
        return self._now

    def wholes(self) -> tuple[str, ...]:
        """The variables this condition reads as whole maps."""
        return self._vars

    def evaluate(self, scope: Mapping[str, Any]) -> Decision:
        """Decide without looking at the last inputs (the caller knows they changed)."""
        decision = self.last = self._decide(scope)
        self._cache = (None, decision)
        return decision

    def without_shortcuts(self) -> None:
        """Decide every time with CEL alone, reading whole maps (for comparisons)."""
        self._fast, self._guards, self._keys, self.keyset = None, None, (), frozenset()
        found = self._kind.reads.findall(self.source)
        self._vars = tuple(dict.fromkeys(v for v in found if v not in NUMBERS))
        self._now = True
        self._numbers = tuple(dict.fromkeys(("now", *self._numbers)))

    def reads(self) -> tuple[tuple[str, str], ...]:
        """The (variable, key) pairs the condition reads at constant keys."""
        return self._keys

    def decide(self, scope: Mapping[str, Any]) -> Decision:
        """Decide against ``scope`` (variable → value, as :class:`mien.rules.Inputs`)."""
        fingerprint: Any = [_get(scope, var, key) for var, key in self._keys]
        if self._vars:
            fingerprint.extend(scope.get(var) for var in self._vars)
        if self._numbers:
            fingerprint.extend(scope.get(n) for n in self._numbers)
        cached = self._cache
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        decision = self.last = self._decide(scope)
        self._cache = (fingerprint, decision)
        return decision

    def _decide(self, scope: Mapping[str, Any]) -> Decision:
        if self._fast is not None:
            try:
                value = self._fast(scope)
            except Missing as exc:
                return Decision("unknown", tuple(f"{x} missing" for x in exc.labels))
            except Fallback:
                pass
            else:
                if value is True:
                    return TRUE
                if value is False:
                    return FALSE
        elif self._guards is not None:
            decisive, guards = self._guards
            for guard in guards:
                try:
                    if guard(scope) is decisive:
                        return TRUE if decisive else FALSE
                except (Missing, Fallback):
                    continue
        return self._cel(scope)

    def _cel(self, scope: Mapping[str, Any]) -> Decision:
        data: dict[str, Any] = {}
        if self._keys:
            for var, key in self._keys:
                value = _get(scope, var, key)
                table = data.setdefault(var, {})
                if value is not _MISSING:
                    table[key] = _cel_value(value)
        for var in self._vars:
            if var not in data:
                value = scope.get(var)
                data[var] = (
                    {k: _cel_value(v) for k, v in value.items()}
                    if isinstance(value, Mapping)
                    else {}
                )
        for n in self._numbers:
            data[n] = float(scope.get(n) or 0.0)
        try:
            value = self._program.eval(data=data)
        except Exception as exc:  # the runtime's own failure: shown, never raised
            return Decision("unknown", (f"error: {exc}",))
        kind = value.type().name()
        if kind == "BOOL":
            return TRUE if value.value() else FALSE
        if kind == "ERROR":
            return Decision("unknown", (_reason(str(value.value())),))
        return Decision("unknown", (f"gives {kind.lower()}, not true or false",))


_INT64 = 2**63


def _cel_value(value: Any) -> Any:
    # CEL integers are 64-bit: a larger Python int becomes the double it is close to.
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        return float(value)
    return value


def _get(scope: Mapping[str, Any], var: str, key: str) -> Any:
    try:
        return scope[var].get(key, _MISSING)
    except (KeyError, AttributeError):
        return _MISSING


_NOT_FOUND = re.compile(r'Key not found in map\s*:\s*"?(.*?)"?\s*$')


def _reason(text: str) -> str:
    m = _NOT_FOUND.search(text)
    if m:
        return f"{m.group(1)} missing"
    if "No matching overloads" in text:
        return "a value of the wrong type (" + text.split(":", 1)[-1].strip() + ")"
    return text


__all__ = ["FALSE", "TRUE", "Condition", "Decision", "Truth", "label"]
