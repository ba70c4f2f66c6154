"""Typed values of the persona language: durations, frequencies, sizes, bandwidths, CPUs.

Each type parses the forms people write (``5m``, ``5 minutes``, ``32 GB``, ``10 Gbps``,
``8 cores``, ``every 6h``, ``0 3 * * 1``), refuses anything else with a message that says
what would have been right, and prints one canonical form, so that ``mien render`` of its
own output is the same output. Used by :mod:`mien.spec.models`; the agent reads the parsed
numbers (``Duration.seconds``, ``Size.bytes``) and :meth:`Frequency.to_cron`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema


class _Value:
    """Base for value types: parse from str (or number), serialise to the canonical str."""

    json_schema: ClassVar[dict[str, Any]] = {"type": "string"}

    @classmethod
    def parse(cls, raw: Any) -> Self:
        raise NotImplementedError

    @classmethod
    def _validate(cls, raw: Any) -> Self:
        if isinstance(raw, cls):
            return raw
        return cls.parse(raw)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                cls.canonical, when_used="always"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(cls.json_schema)

    def canonical(self) -> Any:
        return str(self)


# --- durations -------------------------------------------------------------------------

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WORD_UNITS = {
    "millisecond": "ms",
    "milliseconds": "ms",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "min": "m",
    "mins": "m",
    "minute": "m",
    "minutes": "m",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "day": "d",
    "days": "d",
    "week": "w",
    "weeks": "w",
}
_NOT_FINITE = "a duration must be a finite number of seconds"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_DURATION_FULL = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*[a-z]+\s*(?:and\s+|,\s*)?)+$")


@dataclass(frozen=True, slots=True, order=True)
class Duration(_Value):
    """A span of time. ``30s``, ``5m``, ``2h``, ``1d``, ``1h30m``, ``5 minutes``, ``300``
    (a bare number is seconds). Canonical: ``1h30m``."""

    seconds: float
    json_schema: ClassVar[dict[str, Any]] = {
        "type": ["string", "number"],
        "pattern": r"^\s*(\d+(\.\d+)?\s*[a-z]+\s*)+$",
        "examples": ["30s", "5m", "2h", "1d", "1h30m"],
    }

    @classmethod
    def parse(cls, raw: Any) -> Duration:
        if isinstance(raw, bool):
            raise ValueError("expected a duration such as 30s, 5m, 2h or 1d, not a boolean")
        if isinstance(raw, int | float):
            if not math.isfinite(raw):
                raise ValueError(_NOT_FINITE)
            if raw < 0:
                raise ValueError("a duration cannot be negative")
            return cls(float(raw))
        if not isinstance(raw, str):
            raise ValueError("expected a duration such as 30s, 5m, 2h or 1d")
        text = raw.strip().lower()
        if not _DURATION_FULL.match(text):
            raise ValueError(f"{raw!r} is not a duration: write e.g. 30s, 5m, 2h, 1d or 1h30m")
        total = 0.0
        for number, unit in _DURATION_PART.findall(text):
            unit = _WORD_UNITS.get(unit, unit)
            if unit not in _UNIT_SECONDS:
                raise ValueError(f"{raw!r}: unknown time unit {unit!r} (use ms, s, m, h, d or w)")
            total += float(number) * _UNIT_SECONDS[unit]
        if not math.isfinite(total):
            raise ValueError(_NOT_FINITE)
        return cls(total)

    def __str__(self) -> str:
        ms = round(self.seconds * 1000)
        if ms == 0:  # also below a millisecond: "" would not read back
            return "0s"
        parts = []
        for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
            if ms >= size:
                count, ms = divmod(ms, size)
                parts.append(f"{count}{unit}")
        if ms:
            parts.append(f"{ms}ms")
        return "".join(parts)


# --- sizes and bandwidths --------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?)(i?)(b?)(?:ytes?)?\s*$", re.IGNORECASE)
_POWERS = "kmgtpe"


def _scaled(number: float, prefix: str, base: int) -> int:
    exponent = _POWERS.index(prefix.lower()) + 1 if prefix else 0
    scale: int = base**exponent
    return round(number * scale)


def _render_scaled(value: int, base: int, suffix: str, unit_names: tuple[str, ...]) -> str:
    for i in range(len(unit_names), 0, -1):
        size = base**i
        if value >= size and value % size == 0:
            return f"{value // size}{unit_names[i - 1]}{suffix}"
    return f"{value}{suffix}"


@dataclass(frozen=True, slots=True, order=True)
class Size(_Value):
    """An amount of memory or storage: ``512MiB``, ``4GiB``, ``32 GB``, ``4Gi``.
    IEC units (KiB, MiB, GiB, TiB) are powers of 1024, SI units (kB, MB, GB, TB) of 1000."""

    bytes: int
    binary: bool = True
    json_schema: ClassVar[dict[str, Any]] = {
        "type": "string",
        "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgGtTpPeE]i?)?[bB]?\s*$",
        "examples": ["512MiB", "4GiB", "32GB"],
    }

    @classmethod
    def parse(cls, raw: Any) -> Size:
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise ValueError("expected a size such as 512MiB, 4GiB or 32GB")
        if isinstance(raw, int):
            raise ValueError(f"{raw} needs a unit: write e.g. {raw}MiB or {raw}GiB")
        m = _SIZE.match(raw)
        if not m:
            raise ValueError(f"{raw!r} is not a size: write e.g. 512MiB, 4GiB or 32GB")
        number, prefix, binary, byte = m.groups()
        if not prefix and not byte:
            raise ValueError(f"{raw!r} needs a unit: write e.g. {number}MiB or {number}GiB")
        is_binary = bool(binary)
        value = _scaled(float(number), prefix, 1024 if is_binary else 1000)
        return cls(value, is_binary)

    def __str__(self) -> str:
        if self.binary:
            text = _render_scaled(self.bytes, 1024, "", ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"))
        else:
            text = _render_scaled(self.bytes, 1000, "", ("kB", "MB", "GB", "TB", "PB", "EB"))
        return text + "B" if text.isdigit() else text


_BANDWIDTH = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:bps|bit/s|bits/s|b/s)\s*$", re.IGNORECASE
)


@dataclass(frozen=True, slots=True, order=True)
class Bandwidth(_Value):
    """A network rate in bits per second: ``100Mbps``, ``10 Gbps``, ``1 Gbit/s``."""

    bits_per_second: int
    json_schema: ClassVar[dict[str, Any]] = {
        "type": "string",
        "examples": ["100Mbps", "10Gbps"],
    }

    @classmethod
    def parse(cls, raw: Any) -> Bandwidth:
        m = _BANDWIDTH.match(raw) if isinstance(raw, str) else None
        if not m:
            raise ValueError(f"{raw!r} is not a bandwidth: write e.g. 100Mbps or 10Gbps")
        number, prefix = m.groups()
        if re.search(r"B(?:ps|/s)\s*$", raw):  # a capital B is bytes, not bits
            bits = cls(_scaled(float(number), prefix, 1000) * 8)
            raise ValueError(f"{raw!r} is bytes per second; write bits per second: {bits}")
        return cls(_scaled(float(number), prefix, 1000))

    def __str__(self) -> str:
        return _render_scaled(self.bits_per_second, 1000, "bps", ("k", "M", "G", "T"))


_CPU = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|cores?|cpus?|vcpus?)?\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True, order=True)
class CpuCount(_Value):
    """Processor cores: ``2``, ``0.5``, ``8 cores``, ``500m`` (millicores, as Kubernetes)."""

    cores: float
    json_schema: ClassVar[dict[str, Any]] = {
        "type": ["number", "string"],
        "examples": [2, 0.5, "8 cores", "500m"],
    }

    @classmethod
    def parse(cls, raw: Any) -> CpuCount:
        if isinstance(raw, bool):
            raise ValueError("expected a number of CPU cores such as 2, 0.5 or '8 cores'")
        if isinstance(raw, int | float):
            cores = float(raw)
        else:
            m = _CPU.match(raw) if isinstance(raw, str) else None
            if not m:
                raise ValueError(
                    f"{raw!r} is not a CPU count: write e.g. 2, 0.5, '8 cores' or 500m"
                )
            cores = float(m.group(1)) / (1000 if (m.group(2) or "").lower() == "m" else 1)
        if not 0 < cores <= 4096:
            raise ValueError(f"{raw!r}: CPU cores must be more than 0 and at most 4096")
        return cls(cores)

    def canonical(self) -> Any:
        return int(self.cores) if self.cores.is_integer() else self.cores

    def __str__(self) -> str:
        return str(self.canonical())


# --- plain constrained values ----------------------------------------------------------


def _reject_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number between 0 and 1, not a boolean")
    return value


Weight = Annotated[float, BeforeValidator(_reject_bool), Field(ge=0.0, le=1.0)]
"""A weight in [0, 1]."""

TrustLevel = Literal["none", "low", "medium", "high"]
"""How much risk an action class may take, from ``none`` (never) to ``high``."""
TRUST_ORDER: dict[str, int] = {"none": 0, "low": 1, "medium": 2, "high": 3}

LogLevel = Literal["debug", "info", "warning", "error", "critical"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")
_COMMAND = re.compile(r"^[^\s/\0'\"`$\\]+$")


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid environment variable name "
            "(letters, digits and _, not starting with a digit)"
        )
    return value


def _persona_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid persona name: 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _identifier(value: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(f"{value!r} is not a valid name: letters, digits, '_', '.', '-'")
    return value


def _command_name(value: str) -> str:
    if not _COMMAND.match(value):
        raise ValueError(
            f"{value!r} is not a command name: a bare name such as 'git' or a pattern "
            "such as 'mkfs*', without '/', spaces or quotes"
        )
    return value


def _abs_path(value: str) -> str:
    if "\0" in value:
        raise ValueError("a path cannot contain a NUL byte")
    if value.startswith("~/") or value == "~":
        value = "{home}" + value[1:]
    if not (value.startswith("/") or value.startswith("{home}")):
        raise ValueError(f"{value!r} is not an absolute path (start with /, ~/ or {{home}}/)")
    if ".." in value.split("/"):
        raise ValueError(f"{value!r}: '..' is not allowed in a path")
    return value


MIEN_OWN_DIRS = (
    "/etc/mien",
    "/var/lib/mien",
    "/var/log/mien",
    "/usr/local/lib/mien",
    "/run/mien",
    "/var/run/mien",
)
"""Where mien keeps its own state, logs, routing table and shims. A persona managing a file
there would overwrite the history and the means to roll back, so no persona may."""


def mien_own_dir(path: str) -> str | None:
    """The directory of mien's own that ``path`` (absolute, on the machine) is in, if any."""
    normal = "/" + "/".join(p for p in path.split("/") if p not in ("", "."))
    for directory in MIEN_OWN_DIRS:
        if normal == directory or normal.startswith(directory + "/"):
            return directory
    return None


def _managed_path(value: str) -> str:
    value = _abs_path(value)
    own = mien_own_dir(value)
    if own is not None:
        raise ValueError(
            f"{value!r} is in {own}, where mien keeps its own files: a persona cannot manage it"
        )
    return value


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


EnvVarName = Annotated[str, AfterValidator(_env_name)]
PersonaName = Annotated[str, AfterValidator(_persona_name)]
Identifier = Annotated[str, AfterValidator(_identifier)]
CommandName = Annotated[str, AfterValidator(_command_name)]
AbsPath = Annotated[str, AfterValidator(_abs_path)]
"""An absolute path; ``{user}`` and ``{home}`` are the persona user's name and home."""
ManagedPath = Annotated[str, AfterValidator(_managed_path)]
"""An absolute path of a file a persona manages: not one of mien's own (:data:`MIEN_OWN_DIRS`)."""
Url = Annotated[str, AfterValidator(_url)]
