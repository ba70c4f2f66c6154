"""The tables of the broker of application personas (:mod:`mien.server.broker`): groups of
people, the sandbox hosts' ledger of capacity, the leases on it and the commands run in them.

Queried by :mod:`mien.server.store.groups`, :mod:`mien.server.store.leases` and
:mod:`mien.server.store.lease_runs`. Registered with the one ``metadata`` of
:mod:`mien.server.store.tables`; :mod:`mien.server.store.schema` gathers every area's tables.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, String, Table, Text

from mien.server.store.tables import ACTOR, INSTANCE_ID, NAME, UUID, metadata
from mien.server.store.types import JSONText, UTCDateTime

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
