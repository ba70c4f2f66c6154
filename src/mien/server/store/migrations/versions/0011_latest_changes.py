"""The newest-value tables say which transaction last changed each row (``txn``), so the
orchestrator's leader reads only the rows changed since its last evaluation.

Revision ID: 0011_latest_changes
Revises: 0010_providers
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_latest_changes"
down_revision = "0010_providers"
branch_labels = None
depends_on = None

TABLES = ("metric_latest", "instance_rule_phases")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("txn", sa.BigInteger(), nullable=False, server_default="0"))
        op.create_index(f"ix_{table}_txn", table, ["txn"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_txn", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("txn")
