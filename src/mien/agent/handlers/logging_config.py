"""``behavioral_settings.logging_level`` → ``/etc/mien/logging.json``.

The file is a :func:`logging.config.dictConfig` document at the persona's level: the mien
agent configures its own logging from it (:func:`configure_from`), and any Python program
on the machine can do the same. The environment handler exports the same level as
``LOG_LEVEL`` for programs that read that instead. Raising the level in the file by hand
becomes the customization ``behavioral_settings.logging_level``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from mien.agent.handlers.base import (
    BaseHandler,
    Captured,
    Context,
    FileSpec,
    FileState,
    HandlerPlan,
    Note,
)
from mien.agent.handlers.support import MARK, edited, text_of
from mien.protocol.outcomes import Outcome
from mien.spec.models import Persona

PATH = "/etc/mien/logging.json"
SETTING = "behavioral_settings.logging_level"
LEVELS = ("debug", "info", "warning", "error", "critical")


def logging_document(level: str, persona: str) -> dict[str, Any]:
    """A dictConfig document logging at ``level`` to stderr (the journal, under systemd)."""
    name = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "x-mien": f"{MARK} (persona {persona}): {SETTING} = {level}",
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"level": name, "handlers": ["stderr"]},
        "loggers": {"mien": {"level": name}},
    }


def configure_from(path: Path) -> bool:
    """Configure :mod:`logging` from a document this handler wrote; False when there is
    none (or it is unreadable: logging must never stop the agent)."""
    try:
        document = json.loads(path.read_text())
        import logging.config  # only when logging is configured, not on every apply

        logging.config.dictConfig(document)
    except (OSError, ValueError, TypeError, AttributeError, ImportError):
        return False
    return True


def level_in(text: str) -> str | None:
    """The root level of a logging document (lower case), if it has a known one."""
    try:
        document = json.loads(text)
        level = str(document["root"]["level"]).lower()
    except (ValueError, KeyError, TypeError):
        return None
    return level if level in LEVELS else None


class LoggingHandler(BaseHandler):
    name: ClassVar[str] = "logging"
    settings: ClassVar[tuple[str, ...]] = (SETTING,)
    order: ClassVar[int] = 50

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        level = persona.behavioral_settings.logging_level
        if level is None:
            return HandlerPlan()
        body = json.dumps(logging_document(level, ctx.persona_name), indent=2) + "\n"
        return HandlerPlan(
            files=[
                FileSpec(
                    PATH,
                    FileState(body.encode(), 0o644, 0, 0),
                    {"level": level},
                    f"logging level {level}",
                    SETTING,
                )
            ],
            notes=[
                Note(
                    SETTING,
                    Outcome.APPLIED,
                    f"{level} in {PATH} (mien and Python programs) and LOG_LEVEL",
                )
            ],
        )

    def capture(self, ctx: Context, persona: Persona) -> list[Captured]:
        record = ctx.managed.get(PATH)
        found = edited(ctx, PATH)
        if record is None or record.handler != self.name or found is None:
            return []
        level = level_in(text_of(found[1], PATH) or "")
        if level is None or level == record.meta.get("level"):
            return []
        return [Captured(SETTING, level, PATH)]
