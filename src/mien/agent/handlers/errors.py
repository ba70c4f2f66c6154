"""The error of the handler contract, on its own so that the program runner
(:mod:`mien.agent.handlers.programs`) and the contract (:mod:`mien.agent.handlers.base`, which
re-exports it) can both raise it without importing each other."""

from __future__ import annotations


class HandlerError(Exception):
    """A handler cannot do what the persona asks (the message says what to fix)."""
