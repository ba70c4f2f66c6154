"""Bindings get a mode: ``replace`` (choose the persona, as before) or ``add`` (layer the
binding's persona on top of the chosen one).

Revision ID: 0007_binding_mode
Revises: 0006_fleet_sources
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_binding_mode"
down_revision = "0006_fleet_sources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "bindings",
        sa.Column("mode", sa.String(16), nullable=False, server_default="replace"),
    )


def downgrade() -> None:
    with op.batch_alter_table("bindings") as batch:
        batch.drop_column("mode")
