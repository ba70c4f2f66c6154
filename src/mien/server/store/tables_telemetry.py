"""The tables of fleet telemetry (:mod:`mien.server.telemetry`): the metric samples and
events agents send, their roll-ups, and the newest value of each metric and machine rule
per instance.

Times are seconds since the epoch (the agent's clock): roll-up buckets are arithmetic on
them. Samples and events are kept once per (instance, seq), the agent's queue id.

Queried by :mod:`mien.server.store.telemetry`, :mod:`mien.server.store.latest` and
:mod:`mien.server.store.effectiveness`; also read by :mod:`mien.server.compliance` and
:mod:`mien.server.providers.sizes`. Registered with the one ``metadata`` of
:mod:`mien.server.store.tables`; :mod:`mien.server.store.schema` gathers every area's tables.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table

from mien.server.store.tables import INSTANCE_ID, metadata
from mien.server.store.types import JSONText

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
