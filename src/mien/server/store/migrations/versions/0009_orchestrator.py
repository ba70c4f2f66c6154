"""The orchestrator: fleet rule documents (versioned), their states, the actions they took
(keyed, for idempotency and undo), the lease of the replica that evaluates them, and the
newest phase of each machine rule per instance.

Revision ID: 0009_orchestrator
Revises: 0008_machine_status
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_orchestrator"
down_revision = "0008_machine_status"
branch_labels = None
depends_on = None

NAME = sa.String(63)


def upgrade() -> None:
    op.create_table(
        "instance_rule_phases",
        sa.Column("instance_id", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("phase", sa.String(20), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "rule", name="pk_instance_rule_phases"),
    )
    op.create_table(
        "fleet_rules",
        sa.Column("name", NAME, nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", "version", name="pk_fleet_rules"),
    )
    op.create_table(
        "fleet_rule_states",
        sa.Column("name", NAME, nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("seen", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_fleet_rule_states"),
    )
    op.create_table(
        "fleet_rule_actions",
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("rule", NAME, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("undo", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_fleet_rule_actions"),
    )
    op.create_index("ix_fleet_rule_actions_rule", "fleet_rule_actions", ["rule"])
    op.create_index("ix_fleet_rule_actions_status", "fleet_rule_actions", ["status"])
    op.create_table(
        "orchestrator_lease",
        sa.Column("name", NAME, nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_orchestrator_lease"),
    )


def downgrade() -> None:
    op.drop_table("orchestrator_lease")
    op.drop_table("fleet_rule_actions")
    op.drop_table("fleet_rule_states")
    op.drop_table("fleet_rules")
    op.drop_table("instance_rule_phases")
