"""The persona's ``telemetry:`` section: what the agent's collectors watch, and how often.

A persona grants data domains in ``learning_domains``; this section names the things in
those domains the collectors need to be told about (log files, an access log, latency
probes, processes, watched paths, the auth log, a scan's findings file). Every path is a path
on the machine, resolved under the agent's root. The metric names each domain produces are
the table in :mod:`mien.spec.metrics`; the agent's collectors
(:mod:`mien.agent.adapt.telemetry`) produce exactly those.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from mien.spec.values import Duration, Identifier, Url


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


DEFAULT_PATTERN = "error|fail|critical"


def _machine_path(value: str) -> str:
    if "\0" in value:
        raise ValueError("a path cannot contain a NUL byte")
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path on the machine (start it with /)")
    if ".." in value.split("/"):
        raise ValueError(f"{value!r}: '..' is not allowed in a path")
    return value


MachinePath = Annotated[str, AfterValidator(_machine_path)]
"""An absolute path on the machine (no ``{home}``: telemetry is not per user)."""


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
    return value


class LogFile(_Closed):
    """A log file whose lines matching ``pattern`` (case-insensitive) are counted per minute
    as ``log_errors_per_min:<name>`` (domain ``system_logs``)."""

    name: Identifier
    path: MachinePath
    pattern: Annotated[str, Field(min_length=1)] = DEFAULT_PATTERN

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return _regex(value)


class AccessLog(_Closed):
    """An HTTP access log (domain ``api_calls``): ``common`` or ``combined`` (a trailing
    number is the request time), or ``jsonl`` (one JSON object per line with ``status`` and
    a duration field)."""

    path: MachinePath
    format: Literal["common", "combined", "jsonl"] = "combined"


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port (a port from 1 to 65535)")
    return value


class Probe(_Closed):
    """A latency probe (domain ``metrics``): the time to open a TCP connection to ``tcp``
    (``host:port``) or to get an answer from ``http`` (a URL), as ``latency_ms:<name>``."""

    name: Identifier
    tcp: str | None = None
    http: Url | None = None
    timeout: Duration = Duration(5.0)

    @field_validator("tcp")
    @classmethod
    def _tcp_target(cls, value: str | None) -> str | None:
        return None if value is None else _host_port(value)

    @field_validator("timeout")
    @classmethod
    def _timeout_range(cls, value: Duration) -> Duration:
        if not 0 < value.seconds <= 60:
            raise ValueError("a probe timeout is above 0 and at most 60s")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Probe:
        if (self.tcp is None) == (self.http is None):
            raise ValueError(
                "give the probe's target exactly one way: 'tcp: host:port' or 'http: URL'"
            )
        return self

    @property
    def target(self) -> str:
        return self.tcp or urlsplit(self.http or "").netloc


class Watch(_Closed):
    """A path whose changes are counted as ``file_changes_per_min:<name>`` (domain
    ``file_access``): a directory (its entries, not recursively) or a file."""

    name: Identifier
    path: MachinePath


class Telemetry(_Closed):
    """What the agent's collectors watch, for the ``learning_domains`` the persona grants."""

    interval: Duration = Duration(15.0)
    logs: list[LogFile] = Field(default_factory=list)
    access_log: AccessLog | None = None
    probes: list[Probe] = Field(default_factory=list)
    processes: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list
    )
    watch: list[Watch] = Field(default_factory=list)
    auth_log: MachinePath = "/var/log/auth.log"
    firewall_log: MachinePath = "/var/log/kern.log"
    scan_findings: MachinePath | None = None

    @field_validator("interval")
    @classmethod
    def _not_too_often(cls, value: Duration) -> Duration:
        if value.seconds < 1:
            raise ValueError("sample at most every second (interval: 1s or more)")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Telemetry:
        for field, items in (("logs", self.logs), ("probes", self.probes), ("watch", self.watch)):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"{field}: the name {item.name!r} is given twice")
                seen.add(item.name)
        return self


PART_DOMAINS: dict[str, str] = {
    "logs": "system_logs",
    "access_log": "api_calls",
    "probes": "metrics",
    "processes": "processes",
    "watch": "file_access",
    "auth_log": "auth_events",
    "firewall_log": "auth_events",
    "scan_findings": "auth_events",
}
"""The learning domain each part of the section needs before anything of it is read."""


def ungranted(telemetry: Telemetry, domains: list[str]) -> list[tuple[str, str]]:
    """``(part, warning)`` for each part the persona gives whose domain it does not grant."""
    out = []
    for part, domain in PART_DOMAINS.items():
        if (
            part in telemetry.model_fields_set
            and getattr(telemetry, part)
            and domain not in domains
        ):
            out.append(
                (part, f"{domain} is not in learning_domains, so telemetry.{part} is not read")
            )
    return out
