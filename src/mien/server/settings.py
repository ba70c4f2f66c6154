"""Settings of one server replica: where its state lives, its limits and its timings.

Built by ``mien server`` from its options, by tests directly, and read from ``MIEN_SERVER_*``
environment variables for anything not given (e.g. ``MIEN_SERVER_LONGPOLL_MAX_WAIT=5``).
Every duration is in seconds and every size in bytes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "MIEN_SERVER_"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/mien``, else ``~/.local/share/mien``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mien"


class SettingsError(ValueError):
    """A setting is invalid; the message names it."""


class Settings(BaseModel):
    """One replica's configuration. The database is the only shared state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(default_factory=default_data_dir)
    """Where the embedded SQLite database and the admin token file live."""
    db_url: str | None = None
    """SQLAlchemy URL; default ``sqlite+aiosqlite:///<data_dir>/mien.db``. Scale mode:
    ``postgresql+asyncpg://user:password@host/db`` (any number of replicas)."""
    host: str = "127.0.0.1"
    port: int = Field(8470, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None

    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    """Largest request body; larger ones get 413 before they are read."""
    longpoll_default_wait: float = Field(30.0, ge=0)
    """How long ``/agent/desired`` waits when the agent does not say."""
    longpoll_max_wait: float = Field(60.0, ge=0)
    """The most an agent (or an operator waiting on a command) may ask to wait."""
    heartbeat_flush_interval: float = Field(30.0, gt=0)
    metrics_tag_keys: str = Field("role,zone", max_length=500)
    """Comma-separated tag keys whose values label the fleet gauges on ``/metrics``
    (``mien_fleet_metric_by_tag``); each key exports at most 50 values, the rest as
    ``(other)``, so the label sets stay bounded. Empty: no gauges by tag."""
    """How often last-seen times held in memory are written to the database."""
    connected_after: float = Field(120.0, gt=0)
    """An instance not seen for longer than this is reported as not connected."""
    command_output_cap: int = Field(64 * 1024, ge=1024)
    """Most bytes of stdout (and of stderr) kept per remote command."""
    command_pending_ttl: float = Field(600.0, gt=0)
    """A remote command not picked up by its agent within this long expires."""
    command_result_grace: float = Field(60.0, ge=0)
    """How long after its timeout a sent command's result is still awaited."""
    lease_ttl: float = Field(120.0, ge=5)
    """A lease of an application persona not renewed within this long expires."""
    sandbox_host_timeout: float = Field(30.0, gt=0)
    """A sandbox host silent this long is lost: its leases move or fail."""
    broker_interval: float = Field(1.0, gt=0)
    """How often the broker expires leases, buries silent hosts and serves the queue."""
    telemetry_raw_retention: float = Field(86400.0, gt=0)
    """Seconds raw metric samples are kept (a day)."""
    telemetry_minute_retention: float = Field(7 * 86400.0, gt=0)
    """Seconds 1-minute roll-ups are kept (a week)."""
    telemetry_hour_retention: float = Field(90 * 86400.0, gt=0)
    """Seconds 1-hour roll-ups are kept (90 days)."""
    telemetry_event_retention: float = Field(30 * 86400.0, gt=0)
    """Seconds adaptation events sent by agents are kept (30 days)."""
    telemetry_prune_interval: float = Field(300.0, gt=0)
    """How often telemetry older than its retention is deleted."""
    sources_interval: float = Field(1.0, gt=0)
    """How often the replica looks for fleet-wide data sources due for a poll (each is
    polled at its own ``every``; this is only how soon a due one is noticed)."""
    orchestrator_interval: float = Field(5.0, gt=0)
    """How often the replica holding the orchestrator's lease evaluates the fleet rules."""
    orchestrator_lease_ttl: float = Field(6.0, ge=1)
    """How long the orchestrator's lease lasts unless renewed (every third of it): the
    longest a dead leader's replica keeps the others from evaluating."""
    provider_poll_interval: float = Field(1.0, gt=0)
    """How often the queue of provider calls is looked at for calls due (a new call is
    attempted at once)."""
    provider_retry_base: float = Field(5.0, gt=0)
    """Seconds before the first retry of a failed provider call; doubled each time."""
    provider_retry_cap: float = Field(600.0, gt=0)
    """The longest wait between two attempts of a provider call."""
    provider_max_attempts: int = Field(12, ge=1)
    """Attempts of a provider call before it is given up as failed."""
    provider_reconcile_interval: float = Field(30.0, gt=0)
    """How often instances are compared with their persona's resource_requirements."""
    provider_call_retention: float = Field(90 * 86400.0, gt=0)
    """Seconds a finished provider call (succeeded or given up) is kept (90 days); each
    instance's newest successful resize is kept whatever its age, as its known size. A
    resize given up and pruned is tried again if the instance still needs it."""
    cache_refresh_interval: float = Field(300.0, gt=0)
    """A full reload of the per-replica cache, a safety net under LISTEN/NOTIFY."""
    token_cache_ttl: float = Field(900.0, ge=0)
    """How long a verified token is trusted without reading the database again. A safety
    net only: revocations reach every replica's cache at once through notifications, and
    every full reload (each ``cache_refresh_interval``, and after a lost LISTEN connection)
    reloads all tokens."""
    backlog: int = Field(4096, ge=16)
    """Listen backlog: a reconnect storm of thousands of agents arrives at once."""
    admin_token_file: Path | None = None
    """Where the first admin token is written (0600); default ``<data_dir>/admin.token``."""
    log_level: str = "info"

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.longpoll_default_wait > self.longpoll_max_wait:
            object.__setattr__(self, "longpoll_default_wait", self.longpoll_max_wait)
        return self

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'mien.db'}"

    @property
    def admin_token_path(self) -> Path:
        return self.admin_token_file or self.data_dir / "admin.token"

    @property
    def tag_keys(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.metrics_tag_keys.split(",") if k.strip())

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def build(cls, **given: Any) -> Settings:
        """Settings from ``given`` (``None`` means not given), then the environment."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            env = os.environ.get(ENV_PREFIX + name.upper())
            if env is not None and env != "":
                values[name] = env
        values.update({k: v for k, v in given.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            messages = []
            for error in exc.errors(include_url=False):
                field = ".".join(str(p) for p in error["loc"]) or "settings"
                messages.append(f"{field}: {error['msg']}")
            raise SettingsError("; ".join(messages)) from None


def redact_url(url: str) -> str:
    """A database URL fit for printing: the password replaced by ``***``."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)
