"""Providers: the operator's declarations (driver, tag selector, settings, secret) and the
durable queue of provider calls, one row per idempotency key.

Revision ID: 0010_providers
Revises: 0009_orchestrator
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_providers"
down_revision = "0009_orchestrator"
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
        "providers",
        sa.Column("name", NAME, nullable=False),
        sa.Column("driver", sa.String(32), nullable=False),
        sa.Column("selector", JSON, nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("updated_by", ACTOR, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_providers"),
    )
    op.create_table(
        "provider_calls",
        sa.Column("id", UUID, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("provider", NAME, nullable=False),
        sa.Column("instance_id", INSTANCE, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.Column("next_attempt_at", TIME, nullable=True),
        sa.Column("claimed_until", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("finished_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_provider_calls"),
        sa.UniqueConstraint("idempotency_key", name="uq_provider_calls_idempotency_key"),
    )
    op.create_index(
        "ix_provider_calls_instance_id_created_at", "provider_calls", ["instance_id", "created_at"]
    )
    op.create_index(
        "ix_provider_calls_status_next_attempt_at", "provider_calls", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_table("provider_calls")
    op.drop_table("providers")
