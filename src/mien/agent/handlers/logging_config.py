"""``behavioral_settings.logging_level`` → the machine's logging and mien's own.

* ``/etc/mien/logging.json``: a :func:`logging.config.dictConfig` document at the persona's
  level. ``mien agent run`` configures its own logging from it (:func:`configure_from`),
  and any Python program on the machine can do the same. The environment handler exports
  the same level as ``LOG_LEVEL`` for programs that read that instead. Raising the level in
  the file by hand becomes the customization ``behavioral_settings.logging_level``.
* Where the machine has journald: ``/etc/systemd/journald.conf.d/50-mien.conf`` sets
  ``MaxLevelStore=`` (what the journal keeps) to the level.
* Where it has rsyslog: ``/etc/rsyslog.d/50-mien.conf`` stops messages below the level.

A machine with neither gets a ``pending`` note: its system logging is left as it is.
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
from mien.agent.handlers.support import MARK, edited, header, text_of
from mien.protocol.outcomes import Outcome, Reason
from mien.spec.models import Persona

PATH = "/etc/mien/logging.json"
JOURNALD = "/etc/systemd/journald.conf.d/50-mien.conf"
RSYSLOG = "/etc/rsyslog.d/50-mien.conf"
SETTING = "behavioral_settings.logging_level"
LEVELS = ("debug", "info", "warning", "error", "critical")
# journald's names for the levels, and syslog's severity numbers (7 debug … 2 crit).
JOURNALD_LEVEL = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "error": "err",
    "critical": "crit",
}
SYSLOG_SEVERITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
# Where a machine root shows it has journald or rsyslog.
HAS_JOURNALD = (
    "/etc/systemd/journald.conf",
    "/usr/lib/systemd/systemd-journald",
    "/lib/systemd/systemd-journald",
)
HAS_RSYSLOG = ("/etc/rsyslog.conf", "/usr/sbin/rsyslogd")


def journald_dropin(level: str, persona: str) -> str:
    return f"{header(persona, SETTING)}[Journal]\nMaxLevelStore={JOURNALD_LEVEL[level]}\n"


def rsyslog_dropin(level: str, persona: str) -> str:
    return (
        f"{header(persona, SETTING)}"
        f"# Messages less severe than {level} go no further.\n"
        f"if $syslogseverity > {SYSLOG_SEVERITY[level]} then stop\n"
    )


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
        files = [
            FileSpec(
                PATH,
                FileState(body.encode(), 0o644, 0, 0),
                {"level": level},
                f"logging level {level}",
                SETTING,
            )
        ]
        system = []
        if any(ctx.exists(p) for p in HAS_JOURNALD):
            text = journald_dropin(level, ctx.persona_name)
            files.append(
                FileSpec(
                    JOURNALD,
                    FileState(text.encode(), 0o644, 0, 0),
                    {"level": level},
                    f"journald keeps {level} and above",
                    SETTING,
                )
            )
            system.append(f"journald ({JOURNALD})")
        if any(ctx.exists(p) for p in HAS_RSYSLOG):
            text = rsyslog_dropin(level, ctx.persona_name)
            files.append(
                FileSpec(
                    RSYSLOG,
                    FileState(text.encode(), 0o644, 0, 0),
                    {"level": level},
                    f"rsyslog drops below {level}",
                    SETTING,
                )
            )
            system.append(f"rsyslog ({RSYSLOG})")
        # One outcome per setting: applied where the system's logging follows the level,
        # pending (for the system's part) where the machine has no logger mien can set.
        own = f"{level} in {PATH} (mien agent run, Python programs) and LOG_LEVEL"
        if system:
            note = Note(SETTING, Outcome.APPLIED, own + "".join(f", {s}" for s in system))
        else:
            note = Note(
                SETTING,
                Outcome.PENDING,
                f"{own}; no journald or rsyslog on this machine: the system's logging follows "
                "once one is installed",
                Reason.NOT_INSTALLED,
            )
        return HandlerPlan(files=files, notes=[note])

    def capture(self, ctx: Context, persona: Persona) -> list[Captured]:
        record = ctx.managed.get(PATH)
        found = edited(ctx, PATH)
        if record is None or record.handler != self.name or found is None:
            return []
        level = level_in(text_of(found[1], PATH) or "")
        if level is None or level == record.meta.get("level"):
            return []
        return [Captured(SETTING, level, PATH)]
