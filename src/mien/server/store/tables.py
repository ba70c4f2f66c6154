"""The one ``metadata`` every table of the server registers with, the column sizes they
share, and the fleet's own tables: personas, instances, bindings, activations, commands,
tokens, the audit chain, the fleet policy and the fleet-wide data sources.

The other areas' tables are in :mod:`mien.server.store.tables_broker`,
:mod:`mien.server.store.tables_telemetry` and :mod:`mien.server.store.tables_orchestrator`;
:mod:`mien.server.store.schema` imports them all, so what needs every table takes
``metadata`` from there. Queries live in the sibling modules (one per resource) as
functions taking a session.

The schema is created and upgraded only by the Alembic migrations in ``migrations/``;
``tests/integration/server/test_schema.py`` runs Alembic's autogenerate comparison of the
whole schema against a freshly migrated database, on SQLite and on PostgreSQL, and fails on
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
