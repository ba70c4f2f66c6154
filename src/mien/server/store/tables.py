"""The server's tables: the single source of truth every replica shares.

Queries live in the sibling modules (one per resource) as functions taking a session.
The schema is created and upgraded only by the Alembic migrations in ``migrations/``;
``tests/integration/server/test_schema.py`` runs Alembic's autogenerate comparison of this
metadata against a freshly migrated database, on SQLite and on PostgreSQL, and fails on
any difference: change both together.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from mien.server.store.types import JSONText, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

NAME = 63
INSTANCE_ID = 128
ACTOR = 200
HASH = 80
UUID = 36

server_meta = Table(
    "server_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

personas = Table(
    "personas",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("latest_version", Integer, nullable=False),
    Column("content_hash", String(HASH), nullable=False),
    Column("default_persona", Boolean, nullable=False, default=False),
    Column("default_since", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    Column("deleted_by", String(ACTOR), nullable=True),
)

persona_versions = Table(
    "persona_versions",
    metadata,
    Column("name", String(NAME), ForeignKey("personas.name"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("content_hash", String(HASH), nullable=False),
    Column("document", JSONText, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
)

instances = Table(
    "instances",
    metadata,
    Column("id", String(INSTANCE_ID), primary_key=True),
    Column("hostname", String(255), nullable=True),
    Column("tags", JSONText, nullable=False),
    Column("activation_id", String(UUID), nullable=True),
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("enrolled_by", String(ACTOR), nullable=False),
    Column("last_seen", UTCDateTime, nullable=True),
    Column("agent_version", String(64), nullable=True),
    Column("applied_state", String(16), nullable=True),
    Column("applied_hash", String(HASH), nullable=True),
    Column("applied_persona", String(NAME), nullable=True),
    Column("applied_version", Integer, nullable=True),
    Column("applied_activation_id", String(UUID), nullable=True),
    Column("applied_error", Text, nullable=True),
    Column("applied_at", UTCDateTime, nullable=True),
    Column("history", JSONText, nullable=True),
    Column("deleted_at", UTCDateTime, nullable=True),
    # What became of each setting of the applied persona, as the agent reported it.
    Column("applied_settings", JSONText, nullable=True),
    # The machine's customizations, drift, rule states and recent actions, as reported.
    Column("machine_status", JSONText, nullable=True),
)

bindings = Table(
    "bindings",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("selector", JSONText, nullable=False),
    Column("persona", String(NAME), nullable=False, index=True),
    Column("override", JSONText, nullable=True),
    Column("priority", Integer, nullable=False),
    Column("description", Text, nullable=True),
    Column("version", Integer, nullable=False),
    # replace: the binding chooses the persona; add: its persona is layered on top.
    Column("mode", String(16), nullable=False, server_default="replace"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(ACTOR), nullable=False),
)

activations = Table(
    "activations",
    metadata,
    Column("id", String(UUID), primary_key=True),
    Column("instance_id", String(INSTANCE_ID), nullable=False),
    Column("persona", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("desired_hash", String(HASH), nullable=True),
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("applied_hash", String(HASH), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "instance_id", "created_at"),
    Index(None, "status"),
)

commands = Table(
    "commands",
    metadata,
    Column("id", String(UUID), primary_key=True),
    Column("instance_id", String(INSTANCE_ID), nullable=False),
    Column("command", String(255), nullable=False),
    Column("args", JSONText, nullable=False),
    Column("timeout", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("exit_status", Integer, nullable=True),
    Column("refused", Boolean, nullable=False, default=False),
    Column("stdout", Text, nullable=False, default=""),
    Column("stderr", Text, nullable=False, default=""),
    Column("stdout_truncated", Boolean, nullable=False, default=False),
    Column("stderr_truncated", Boolean, nullable=False, default=False),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "instance_id", "status"),
    Index(None, "status", "expires_at"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(UUID), primary_key=True),
    Column("name", String(ACTOR), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("role", String(16), nullable=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("instance_id", String(INSTANCE_ID), nullable=True, index=True),
    Column("uses_left", Integer, nullable=True),
    Column("tags", JSONText, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),
    Column("actor", String(ACTOR), nullable=False, index=True),
    Column("action", String(64), nullable=False),
    Column("instance_id", String(INSTANCE_ID), nullable=True, index=True),
    Column("persona", String(NAME), nullable=True, index=True),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index(None, "at"),
)

# --- the broker of application personas (mien.server.broker) --------------------------

groups = Table(
    "groups",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("member", String(ACTOR), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
)

# The ledger: what each sandbox host offers and what its live leases hold. ``used_*`` move
# only by conditional UPDATEs (``used + ask <= total``), so no two admissions over-commit.
sandbox_hosts = Table(
    "sandbox_hosts",
    metadata,
    Column("instance_id", String(INSTANCE_ID), primary_key=True),
    Column("cpu", Float, nullable=False),
    Column("memory", BigInteger, nullable=False),
    Column("storage", BigInteger, nullable=False),
    Column("used_cpu", Float, nullable=False),
    Column("used_memory", BigInteger, nullable=False),
    Column("used_storage", BigInteger, nullable=False),
    Column("driver", String(32), nullable=True),
    Column("alive", Boolean, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("id", String(UUID), primary_key=True),
    Column("persona", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("holder", String(ACTOR), nullable=False, index=True),
    Column("state", String(24), nullable=False),
    Column("reason", Text, nullable=True),
    Column("priority", Integer, nullable=False),
    Column("preemptible", Boolean, nullable=False),
    Column("cpu", Float, nullable=False),
    Column("memory", BigInteger, nullable=False),
    Column("storage", BigInteger, nullable=False),
    Column("host", String(INSTANCE_ID), nullable=True, index=True),
    Column("picked_at", UTCDateTime, nullable=True),
    Column("destroyed_at", UTCDateTime, nullable=True),
    Column("ttl", Float, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("usage", JSONText, nullable=True),
    # The composed persona at request time: what the host builds.
    Column("document", JSONText, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "state", "priority", "created_at"),
)

lease_runs = Table(
    "lease_runs",
    metadata,
    Column("id", String(UUID), primary_key=True),
    Column("lease_id", String(UUID), nullable=False, index=True),
    Column("host", String(INSTANCE_ID), nullable=False),
    Column("argv", JSONText, nullable=False),
    Column("timeout", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("exit_status", Integer, nullable=True),
    Column("stdout", Text, nullable=False),
    Column("stderr", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "host", "status"),
)

# --- fleet telemetry (mien.server.telemetry) -------------------------------------------
# Times are seconds since the epoch (the agent's clock): roll-up buckets are arithmetic on
# them. Samples and events are kept once per (instance, seq), the agent's queue id.

metric_samples = Table(
    "metric_samples",
    metadata,
    Column("instance_id", String(INSTANCE_ID), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", Float, nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("value", Float, nullable=False),
    Index(None, "instance_id", "name", "ts"),
)

# One row per (instance, metric, step, bucket start): step 60 (kept a week) and 3600 (90 days).
metric_rollups = Table(
    "metric_rollups",
    metadata,
    Column("instance_id", String(INSTANCE_ID), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("step", Integer, primary_key=True, autoincrement=False),
    Column("bucket", Float, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("sum", Float, nullable=False),
    Column("min", Float, nullable=False),
    Column("max", Float, nullable=False),
    Column("last", Float, nullable=False),
    Column("last_ts", Float, nullable=False),
    Index(None, "step", "bucket"),
)

# The newest value of each metric per instance (at most MAX_LATEST names each): the fleet
# gauges on /metrics and the orchestrator's aggregates read it. txn: which transaction
# changed the row last (mien.server.store.latest), so the orchestrator reads only changes.
metric_latest = Table(
    "metric_latest",
    metadata,
    Column("instance_id", String(INSTANCE_ID), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("ts", Float, nullable=False),
    Column("value", Float, nullable=False),
    Column("txn", BigInteger, nullable=False, server_default="0", index=True),
)

# Events the agents sent (seq > 0) and the server's notes about them (seq < 0).
telemetry_events = Table(
    "telemetry_events",
    metadata,
    Column("instance_id", String(INSTANCE_ID), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", Float, nullable=False, index=True),
    Column("kind", String(100), nullable=False, index=True),
    Column("detail", JSONText, nullable=False),
)

# The fleet policy: every version pushed, immutable; the highest version is in force.
policy_versions = Table(
    "policy_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("content_hash", String(HASH), nullable=False),
    Column("document", JSONText, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
)

# Fleet-wide data sources: the server's last good copy of each (one row per URL and
# parsing, whatever personas name it), the state of its polling, and the claim that lets
# exactly one replica poll it at a time (next_at moved forward by the claimant).
fleet_sources = Table(
    "fleet_sources",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("parse", String(16), nullable=False),
    Column("every", Float, nullable=False),
    Column("timeout", Float, nullable=False),
    Column("wanted_at", Float, nullable=False),
    Column("next_at", Float, nullable=False, index=True),
    Column("claimed_by", String(64)),
    Column("value", JSONText),
    Column("digest", String(HASH)),
    Column("fetched_at", Float),
    Column("changed_at", Float),
    Column("checked_at", Float),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("failures", Integer, nullable=False),
    Column("last_error", Text),
)

# The newest phase of each machine rule per instance, from the agents' adapt.rule.* events
# (the orchestrator's firing / firing_fraction read it; bounded per instance at ingest).
instance_rule_phases = Table(
    "instance_rule_phases",
    metadata,
    Column("instance_id", String(INSTANCE_ID), primary_key=True),
    Column("rule", String(200), primary_key=True),
    Column("phase", String(20), nullable=False),
    Column("ts", Float, nullable=False),
    Column("txn", BigInteger, nullable=False, server_default="0", index=True),
)

# --- the orchestrator (mien.server.orchestrator) ---------------------------------------

# Every version of every fleet rule document; the newest without deleted_at is in force.
fleet_rules = Table(
    "fleet_rules",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("document", JSONText, nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
)

# Each fleet rule's state machine (mien.rules.RuleState as JSON), written by the leader.
fleet_rule_states = Table(
    "fleet_rule_states",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("state", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("seen", JSONText, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# What fleet rules did, once per (rule, firing, action): the key makes a replayed
# transition a no-op; `undo` is what resolving reverts; status pending → done (a provider
# request is pending until handed to the queue).
fleet_rule_actions = Table(
    "fleet_rule_actions",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("rule", String(NAME), nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("at", Float, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("detail", JSONText, nullable=False),
    Column("undo", JSONText, nullable=True),
)

# Which replica evaluates fleet rules, until when (renewed every few seconds).
orchestrator_lease = Table(
    "orchestrator_lease",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),
)

# --- providers (mien.server.providers) -------------------------------------------------

# What the operator declared: a driver, the instances it serves (a tag selector), the
# driver's settings and its secret (never returned by the API).
providers = Table(
    "providers",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("driver", String(32), nullable=False),
    Column("selector", JSONText, nullable=False),
    Column("config", JSONText, nullable=False),
    Column("secret", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(ACTOR), nullable=False),
)

# The durable queue of provider calls: one row per idempotency key, attempted until it
# succeeds or fails for good. ``claimed_until``: a replica is attempting it until then.
provider_calls = Table(
    "provider_calls",
    metadata,
    Column("id", String(UUID), primary_key=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("provider", String(NAME), nullable=False),
    Column("instance_id", String(INSTANCE_ID), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("params", JSONText, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("result", JSONText, nullable=True),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Index(None, "instance_id", "created_at"),
    Index(None, "status", "next_attempt_at"),
)
