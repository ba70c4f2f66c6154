"""Instances keep what their agent reports of the machine beside the settings' outcomes:
customizations, drift, rule states and recent automated actions.

Revision ID: 0008_machine_status
Revises: 0007_binding_mode
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_machine_status"
down_revision = "0007_binding_mode"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("instances", sa.Column("machine_status", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("machine_status")
