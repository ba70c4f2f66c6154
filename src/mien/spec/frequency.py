"""Frequencies of scheduled jobs: ``daily``, ``every 6h``, or a cron line, and the cron
schedule each becomes.

Used by :mod:`mien.spec.models` (``behavioral_settings``) and by the agent's schedules
handler, which writes ``Frequency.to_cron(key)`` into ``/etc/cron.d``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from mien.spec.values import Duration, _Value

_KEYWORDS = ("hourly", "daily", "weekly", "monthly", "yearly")
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {
            m: i + 1
            for i, m in enumerate(
                ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
            )
        },
    ),
    (
        "day of week",
        0,
        7,
        {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
    ),
)


def _check_cron_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> None:
    for item in text.split(","):
        body, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"cron {name} field {item!r}: step must be a positive number")
        if body == "*":
            continue
        lo, _, hi = body.partition("-")
        for bound in (lo, hi) if hi else (lo,):
            value = names.get(bound.lower()) if not bound.isdigit() else int(bound)
            if value is None or not low <= value <= high:
                raise ValueError(f"cron {name} field {item!r}: {bound!r} is outside {low}-{high}")


@dataclass(frozen=True, slots=True)
class Frequency(_Value):
    """How often something runs: ``hourly``, ``daily``, ``weekly``, ``monthly``, ``yearly``,
    ``every 6h`` (any duration of at least a minute), or a 5-field cron expression."""

    text: str
    json_schema: ClassVar[dict[str, Any]] = {
        "type": "string",
        "examples": ["daily", "weekly", "every 6h", "30 2 * * 1"],
    }

    @classmethod
    def parse(cls, raw: Any) -> Frequency:
        if not isinstance(raw, str):
            raise ValueError(
                "expected a frequency: hourly, daily, weekly, monthly, 'every 6h' or a cron line"
            )
        text = " ".join(raw.strip().split())
        low = text.lower().lstrip("@")
        if low in _KEYWORDS:
            return cls(low)
        if low.startswith("every "):
            every = Duration.parse(low[6:])
            if every.seconds < 60:
                raise ValueError(f"{raw!r}: schedules run at most once a minute")
            cls._cron_every(every)  # refuse intervals cron cannot express
            return cls(f"every {every}")
        fields = text.split(" ")
        if len(fields) == 5:
            for value, (name, lo, hi, names) in zip(fields, _CRON_FIELDS, strict=True):
                _check_cron_field(value, name, lo, hi, names)
            return cls(text)
        raise ValueError(
            f"{raw!r} is not a frequency: use hourly, daily, weekly, monthly, yearly, "
            "'every <duration>' (e.g. every 6h) or a 5-field cron expression"
        )

    @staticmethod
    def _cron_every(every: Duration) -> tuple[str, int]:
        minutes = round(every.seconds / 60)
        if every.seconds % 60:
            raise ValueError(f"every {every}: cron schedules have whole minutes")
        # `< limit`: 60 minutes is an hour (spread per persona), not "*/60" in the minute field
        for unit, size, limit in (("minute", 1, 60), ("hour", 60, 24), ("day", 1440, 32)):
            if minutes % size == 0 and minutes // size < limit:
                n = minutes // size
                if unit != "day" and limit % n:
                    raise ValueError(
                        f"every {every} cannot be a cron schedule: {n} does not divide {limit} "
                        f"{unit}s evenly; pick a divisor or write a cron expression"
                    )
                return unit, n
        raise ValueError(f"every {every} is longer than cron can express (31 days)")

    def to_cron(self, key: str) -> str:
        """The cron schedule. Keyword schedules get a minute and hour derived from ``key``
        (stable per persona and setting), so a fleet does not run the same job at once."""
        digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")
        minute, hour = digest % 60, (digest // 60) % 6  # 00:00-05:59, quiet hours
        if self.text == "hourly":
            return f"{minute} * * * *"
        if self.text == "daily":
            return f"{minute} {hour} * * *"
        if self.text == "weekly":
            return f"{minute} {hour} * * {digest % 7}"
        if self.text == "monthly":
            return f"{minute} {hour} {1 + digest % 28} * *"
        if self.text == "yearly":
            return f"{minute} {hour} {1 + digest % 28} {1 + digest % 12} *"
        if self.text.startswith("every "):
            unit, n = self._cron_every(Duration.parse(self.text[6:]))
            if unit == "minute":
                return "* * * * *" if n == 1 else f"*/{n} * * * *"
            if unit == "hour":
                return f"{minute} * * * *" if n == 1 else f"{minute} */{n} * * *"
            return f"{minute} {hour} * * *" if n == 1 else f"{minute} {hour} */{n} * *"
        return self.text

    def __str__(self) -> str:
        return self.text
