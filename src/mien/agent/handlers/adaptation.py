"""The adaptive half of a persona: acted on by the agent's adaptation loop, not at apply.

``mien apply`` writes nothing for these fields. The agent's loop (``mien agent run``, or
``mien agent run --local`` on a machine without a server; see docs/adaptation.md) reads
them from the active persona while it runs, so each field a persona sets is reported as
*pending* with reason ``agent``: "applied by the agent's adaptation loop". Claiming them
here keeps them out of the settings store's "stored, not applied" list.
"""

from __future__ import annotations

from typing import ClassVar

from mien.agent.handlers.base import BaseHandler, Context, HandlerPlan, Note
from mien.protocol.outcomes import Outcome, Reason
from mien.spec.models import Persona

MESSAGE = "applied by the agent's adaptation loop (mien agent run) while it runs"


class AdaptationHandler(BaseHandler):
    name: ClassVar[str] = "adaptation"
    settings: ClassVar[tuple[str, ...]] = (
        "priority_metrics",
        "learning_domains",
        "trust_levels",
        "adaptation_rules",
        "decay_rate",
        "external_data_sources",
        "automated_responses",
        "telemetry",  # the loop's interval and what its collectors read
    )
    order: ClassVar[int] = 85

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        given = persona.model_fields_set
        notes = [
            Note(field, Outcome.PENDING, MESSAGE, Reason.AGENT)
            for field in self.settings
            if field in given and getattr(persona, field, None) not in (None, {}, [])
        ]
        return HandlerPlan(notes=notes)
