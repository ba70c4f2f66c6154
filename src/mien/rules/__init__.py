"""Adaptation rules, evaluated: pure functions from a persona and samples to decisions.

``RuleSet.compile(persona)`` compiles every rule's conditions once; ``RuleSet.step``
advances each rule's state machine over one :class:`Inputs` sample and says what to do
(:class:`Intent`, judged by trust, cooldown and priority) and what to undo (``resolved``).
No I/O and no clock: the agent's loop, ``mien rules test`` and the server supply inputs
and keep the states (:class:`RuleState`, JSON round trip).
"""

from __future__ import annotations

from mien.rules.conditions import Decision
from mien.rules.engine import Inputs, RuleSet, Step, source_data
from mien.rules.intents import Intent
from mien.rules.machine import Transition
from mien.rules.state import Phase, RuleState

__all__ = [
    "Decision",
    "Inputs",
    "Intent",
    "Phase",
    "RuleSet",
    "RuleState",
    "Step",
    "Transition",
    "source_data",
]
