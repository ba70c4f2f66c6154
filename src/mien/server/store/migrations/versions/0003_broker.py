"""The broker of application personas: groups of users, sandbox hosts (the ledger of what
each offers and holds), leases, and the commands run inside leases.

Revision ID: 0003_broker
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_broker"
down_revision = "0002"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
JSON = sa.Text()
NAME = sa.String(63)
INSTANCE = sa.String(128)
ACTOR = sa.String(200)
UUID = sa.String(36)


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("name", NAME, nullable=False),
        sa.Column("member", ACTOR, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.PrimaryKeyConstraint("name", "member", name="pk_groups"),
    )
    op.create_table(
        "sandbox_hosts",
        sa.Column("instance_id", INSTANCE, nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("memory", sa.BigInteger(), nullable=False),
        sa.Column("storage", sa.BigInteger(), nullable=False),
        sa.Column("used_cpu", sa.Float(), nullable=False),
        sa.Column("used_memory", sa.BigInteger(), nullable=False),
        sa.Column("used_storage", sa.BigInteger(), nullable=False),
        sa.Column("driver", sa.String(32), nullable=True),
        sa.Column("alive", sa.Boolean(), nullable=False),
        sa.Column("last_seen", TIME, nullable=False),
        sa.Column("registered_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("instance_id", name="pk_sandbox_hosts"),
    )
    op.create_table(
        "leases",
        sa.Column("id", UUID, nullable=False),
        sa.Column("persona", NAME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("holder", ACTOR, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("preemptible", sa.Boolean(), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("memory", sa.BigInteger(), nullable=False),
        sa.Column("storage", sa.BigInteger(), nullable=False),
        sa.Column("host", INSTANCE, nullable=True),
        sa.Column("picked_at", TIME, nullable=True),
        sa.Column("destroyed_at", TIME, nullable=True),
        sa.Column("ttl", sa.Float(), nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("usage", JSON, nullable=True),
        sa.Column("document", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_leases"),
    )
    op.create_index("ix_leases_holder", "leases", ["holder"])
    op.create_index("ix_leases_host", "leases", ["host"])
    op.create_index(
        "ix_leases_state_priority_created_at", "leases", ["state", "priority", "created_at"]
    )
    op.create_table(
        "lease_runs",
        sa.Column("id", UUID, nullable=False),
        sa.Column("lease_id", UUID, nullable=False),
        sa.Column("host", INSTANCE, nullable=False),
        sa.Column("argv", JSON, nullable=False),
        sa.Column("timeout", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("exit_status", sa.Integer(), nullable=True),
        sa.Column("stdout", sa.Text(), nullable=False),
        sa.Column("stderr", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("expires_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lease_runs"),
    )
    op.create_index("ix_lease_runs_lease_id", "lease_runs", ["lease_id"])
    op.create_index("ix_lease_runs_host_status", "lease_runs", ["host", "status"])


def downgrade() -> None:
    for table in ("lease_runs", "leases", "sandbox_hosts", "groups"):
        op.drop_table(table)
