"""Fleet telemetry: raw metric samples, their 1-minute and 1-hour roll-ups, the newest value
of the metrics exported as fleet gauges, and the adaptation events agents send.

Revision ID: 0004_telemetry
Revises: 0003_broker
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_telemetry"
down_revision = "0003_broker"
branch_labels = None
depends_on = None

INSTANCE = sa.String(128)
METRIC = sa.String(200)


def upgrade() -> None:
    op.create_table(
        "metric_samples",
        sa.Column("instance_id", INSTANCE, nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("name", METRIC, nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "seq", name="pk_metric_samples"),
    )
    op.create_index("ix_metric_samples_ts", "metric_samples", ["ts"])
    op.create_index(
        "ix_metric_samples_instance_id_name_ts", "metric_samples", ["instance_id", "name", "ts"]
    )
    op.create_table(
        "metric_rollups",
        sa.Column("instance_id", INSTANCE, nullable=False),
        sa.Column("name", METRIC, nullable=False),
        sa.Column("step", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("last", sa.Float(), nullable=False),
        sa.Column("last_ts", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "name", "step", "bucket", name="pk_metric_rollups"),
    )
    op.create_index("ix_metric_rollups_step_bucket", "metric_rollups", ["step", "bucket"])
    op.create_table(
        "metric_latest",
        sa.Column("instance_id", INSTANCE, nullable=False),
        sa.Column("name", METRIC, nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "name", name="pk_metric_latest"),
    )
    op.create_table(
        "telemetry_events",
        sa.Column("instance_id", INSTANCE, nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "seq", name="pk_telemetry_events"),
    )
    op.create_index("ix_telemetry_events_ts", "telemetry_events", ["ts"])
    op.create_index("ix_telemetry_events_kind", "telemetry_events", ["kind"])


def downgrade() -> None:
    op.drop_table("telemetry_events")
    op.drop_table("metric_latest")
    op.drop_table("metric_rollups")
    op.drop_table("metric_samples")
