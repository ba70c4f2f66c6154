"""Trust decisions: may an action of a risk category run under a persona's trust_levels.

Pure; used by :mod:`mien.rules.engine` on every intent and by ``mien rules test``. A risk
category the persona does not list is trusted ``none``; an action that needs ``none``
(``notify``) always runs.
"""

from __future__ import annotations

from collections.abc import Mapping

LEVELS: tuple[str, ...] = ("none", "low", "medium", "high")
_RANK = {level: i for i, level in enumerate(LEVELS)}


def granted(trust_levels: Mapping[str, str], risk: str | None) -> str:
    """The level the persona grants a risk category (``none`` when not listed)."""
    if risk is None:
        return "high"
    return str(trust_levels.get(risk, "none")).lower()


def allowed(trust_levels: Mapping[str, str], risk: str | None, needed: str) -> bool:
    """True when the persona's level for ``risk`` is at least ``needed``."""
    if needed == "none" or risk is None:
        return True
    return _RANK.get(granted(trust_levels, risk), 0) >= _RANK[needed]


def refusal(trust_levels: Mapping[str, str], risk: str | None, needed: str) -> str | None:
    """Why an action is refused (a sentence), or None when trust allows it."""
    if allowed(trust_levels, risk, needed):
        return None
    return f"needs {risk} trust {needed}, the persona grants {granted(trust_levels, risk)}"
