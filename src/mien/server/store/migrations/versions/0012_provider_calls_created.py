"""An index on provider calls' creation time: the fleet's newest calls (the dashboard's
orchestrator page, ``GET /provider-calls``) are read without sorting the whole table.

Revision ID: 0012_provider_calls_created
Revises: 0011_latest_changes
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0012_provider_calls_created"
down_revision = "0011_latest_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_provider_calls_created_at", "provider_calls", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_provider_calls_created_at", "provider_calls")
