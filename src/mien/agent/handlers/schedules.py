"""``behavioral_settings.auto_update_frequency`` and ``security_scan_frequency`` → cron jobs.

Each is one file in ``/etc/cron.d`` (``mien-auto-update``, ``mien-security-scan``: cron
ignores names with dots), run as root with a fixed ``SHELL`` and ``PATH``, output appended
to ``/var/log/mien/<job>.log``. Keyword frequencies get a minute and hour derived from the
persona name and the setting (:meth:`Frequency.to_cron`), so a fleet does not update at
the same instant. The commands default to what the root has installed
(``unattended-upgrade``; ``lynis``, then ``debsecan``) and can be set with
``behavioral_settings.auto_update_command`` / ``security_scan_command``. A user's edit of
the schedule or the command in the file becomes a customization of those settings.
Notes say when nothing will run the jobs (no cron daemon, or a root that is not running).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mien.agent.handlers.base import (
    BaseHandler,
    Captured,
    Context,
    FileSpec,
    FileState,
    HandlerPlan,
    Note,
)
from mien.agent.handlers.programs import STANDARD_PATH
from mien.agent.handlers.quoting import cron_command, cron_uncommand
from mien.agent.handlers.support import edited, header, text_of
from mien.protocol.outcomes import Outcome, Reason
from mien.spec.frequency import Frequency
from mien.spec.models import Persona

LOG_DIR = "/var/log/mien"
CRON_DAEMONS = frozenset({"cron", "crond", "cronie", "fcron", "dcron", "anacron", "busybox"})


@dataclass(frozen=True, slots=True)
class Job:
    key: str  # behavioral_settings key of the frequency
    command_key: str  # behavioral_settings key of the command
    path: str
    log: str

    @property
    def setting(self) -> str:
        return f"behavioral_settings.{self.key}"


JOBS = (
    Job(
        "auto_update_frequency",
        "auto_update_command",
        "/etc/cron.d/mien-auto-update",
        "auto-update",
    ),
    Job(
        "security_scan_frequency",
        "security_scan_command",
        "/etc/cron.d/mien-security-scan",
        "security-scan",
    ),
)


def default_command(job: Job, installed: Callable[[str], bool]) -> str:
    """The Debian/Ubuntu command for a job, from what the root has installed."""
    if job.log == "auto-update":
        if installed("unattended-upgrade"):
            return "unattended-upgrade"
        return "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade"
    if installed("lynis"):
        return "lynis audit system --cronjob"
    if installed("debsecan"):
        return "debsecan"
    return "apt-get update -qq && apt-get -s upgrade | grep -i security"


def _wrap(command: str, log: str) -> tuple[str, str]:
    prefix = f'mkdir -p {LOG_DIR} && {{ echo "--- $(date -Is)"; '
    suffix = f"; }} >>{LOG_DIR}/{log}.log 2>&1"
    return prefix, suffix


def cron_line(schedule: str, command: str, log: str) -> str:
    """The job line: schedule, user root, the command with its output logged."""
    prefix, suffix = _wrap(command, log)
    return f"{schedule} root {prefix}{cron_command(command)}{suffix}\n"


def cron_file(
    persona: str, setting: str, frequency: str, schedule: str, command: str, log: str
) -> str:
    return (
        header(persona, f"{setting} = {frequency}")
        + f"SHELL=/bin/sh\nPATH={STANDARD_PATH}\n"
        + cron_line(schedule, command, log)
    )


def parse_job(text: str, log: str) -> tuple[str, str | None] | None:
    """The schedule and command of the job line in a cron.d text (command None when the
    line no longer has mien's logging around it)."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" in stripped.split(" ", 1)[0]:
            continue
        fields = stripped.split(None, 6)
        if len(fields) < 7:
            continue
        schedule, rest = " ".join(fields[:5]), fields[6]
        prefix, suffix = _wrap("", log)
        if rest.startswith(prefix) and rest.endswith(suffix):
            return schedule, cron_uncommand(rest[len(prefix) : len(rest) - len(suffix)])
        return schedule, None
    return None


class SchedulesHandler(BaseHandler):
    name: ClassVar[str] = "schedules"
    settings: ClassVar[tuple[str, ...]] = tuple(
        f"behavioral_settings.{k}" for job in JOBS for k in (job.key, job.command_key)
    )
    order: ClassVar[int] = 60

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        result = HandlerPlan()
        behaviour = persona.behavioral_settings
        extra = behaviour.model_extra or {}
        wanted = [(job, getattr(behaviour, job.key)) for job in JOBS]
        wanted = [(job, freq) for job, freq in wanted if isinstance(freq, Frequency)]
        for job, freq in wanted:
            configured = extra.get(job.command_key)
            if configured is not None and (
                not isinstance(configured, str) or not configured.strip()
            ):
                result.notes.append(
                    Note(
                        f"behavioral_settings.{job.command_key}",
                        Outcome.FAILED,
                        "must be a command line (text); the default command is used",
                    )
                )
                configured = None
            command = (
                str(configured).strip()
                if configured
                else default_command(job, lambda c: ctx.which(c) is not None)
            )
            schedule = freq.to_cron(f"{ctx.persona_name}.{job.setting}")
            text = cron_file(ctx.persona_name, job.setting, str(freq), schedule, command, job.log)
            result.files.append(
                FileSpec(
                    job.path,
                    FileState(text.encode(), 0o644, 0, 0),
                    {"schedule": schedule, "command": command, "job": job.log},
                    f"{job.log}: {schedule} ({freq})",
                    job.setting,
                    capture_as=job.setting,  # an edit no setting explains is kept whole
                )
            )
            result.notes.append(
                Note(job.setting, Outcome.APPLIED, f"cron {schedule} root: {command}")
            )
        if wanted:
            self._cron_notes(ctx, result, [job.setting for job, _ in wanted])
        return result

    @staticmethod
    def _cron_notes(ctx: Context, result: HandlerPlan, settings: list[str]) -> None:
        installed = any(ctx.which(c) for c in ("cron", "crond", "fcron", "busybox"))
        reason = Reason.NOT_INSTALLED if not installed else Reason.SERVICE_STOPPED
        if ctx.root != Path("/"):
            message = "schedules fire when this root is the running system"
            if not installed:
                message += " and a cron daemon is installed in it"
        elif not installed:
            message = "cron is not installed: schedules will not fire until it is"
        elif not ctx.process_running(CRON_DAEMONS):
            message = "no cron daemon running: schedules will not fire until cron runs"
        else:
            return
        for setting in settings:
            result.notes.append(Note(setting, Outcome.PENDING, message, reason))

    def capture(self, ctx: Context, persona: Persona) -> list[Captured]:
        out: list[Captured] = []
        for job in JOBS:
            record = ctx.managed.get(job.path)
            found = edited(ctx, job.path)
            if record is None or record.handler != self.name or found is None:
                continue
            parsed = parse_job(text_of(found[1], job.path) or "", job.log)
            if parsed is None:
                continue
            schedule, command = parsed
            if schedule != record.meta.get("schedule"):
                out.append(Captured(job.setting, schedule, job.path))
            if command is not None and command != record.meta.get("command"):
                out.append(Captured(f"behavioral_settings.{job.command_key}", command, job.path))
        return out
