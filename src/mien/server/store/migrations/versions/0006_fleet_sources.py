"""Fleet-wide data sources: the server's last good copy of each, and its polling state.

Revision ID: 0006_fleet_sources
Revises: 0005_policy
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_fleet_sources"
down_revision = "0005_policy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet_sources",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("parse", sa.String(16), nullable=False),
        sa.Column("every", sa.Float(), nullable=False),
        sa.Column("timeout", sa.Float(), nullable=False),
        sa.Column("wanted_at", sa.Float(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("digest", sa.String(80), nullable=True),
        sa.Column("fetched_at", sa.Float(), nullable=True),
        sa.Column("changed_at", sa.Float(), nullable=True),
        sa.Column("checked_at", sa.Float(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_fleet_sources"),
    )
    op.create_index("ix_fleet_sources_next_at", "fleet_sources", ["next_at"])


def downgrade() -> None:
    op.drop_table("fleet_sources")
