"""The tables of what the server does on the fleet's behalf: the orchestrator's fleet rules
(:mod:`mien.server.orchestrator`: their documents, states, actions and the lease of the
replica evaluating them) and the providers (:mod:`mien.server.providers`: their
declarations and the durable queue of their calls).

Queried by :mod:`mien.server.store.fleet_rules`, :mod:`mien.server.store.orchestrator_lease`
and :mod:`mien.server.store.providers`. Registered with the one ``metadata`` of
:mod:`mien.server.store.tables`; :mod:`mien.server.store.schema` gathers every area's tables.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from mien.server.store.tables import ACTOR, INSTANCE_ID, NAME, UUID, metadata
from mien.server.store.types import JSONText, UTCDateTime

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
    Index(None, "created_at"),  # the fleet's newest calls
)
