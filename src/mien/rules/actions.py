"""The action registry as the runtime sees it: name → risk, trust needed, parameters.

Defined in :mod:`mien.spec.actions` (validation needs it); re-exported here for the agent's
executors and the server. ``respond: NAME`` is not an action of its own: the engine expands
it into the actions of ``automated_responses.NAME``.
"""

from __future__ import annotations

from mien.spec.actions import ACTIONS, RISKS, ActionSpec, Params, Risk, params_of

__all__ = ["ACTIONS", "RISKS", "ActionSpec", "Params", "Risk", "params_of"]
