"""Initial schema: personas and their versions, instances, bindings, activations, remote
commands, tokens, the hash-chained audit log (append-only, enforced by triggers).

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Column types as the TypeDecorators in mien.server.store.types store them, spelled out so
# this migration never changes when those classes do.
TIME = sa.DateTime(timezone=True)
JSON = sa.Text()
NAME = sa.String(63)
INSTANCE = sa.String(128)
ACTOR = sa.String(200)
HASH = sa.String(80)
UUID = sa.String(36)


def upgrade() -> None:
    op.create_table(
        "server_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_server_meta"),
    )
    op.create_table(
        "personas",
        sa.Column("name", NAME, nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("content_hash", HASH, nullable=False),
        sa.Column("default_persona", sa.Boolean(), nullable=False),
        sa.Column("default_since", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("deleted_at", TIME, nullable=True),
        sa.Column("deleted_by", ACTOR, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_personas"),
    )
    op.create_table(
        "persona_versions",
        sa.Column("name", NAME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", HASH, nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.ForeignKeyConstraint(
            ["name"], ["personas.name"], name="fk_persona_versions_name_personas"
        ),
        sa.PrimaryKeyConstraint("name", "version", name="pk_persona_versions"),
    )
    op.create_table(
        "instances",
        sa.Column("id", INSTANCE, nullable=False),
        sa.Column("hostname", sa.String(255), nullable=True),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("activation_id", UUID, nullable=True),
        sa.Column("enrolled_at", TIME, nullable=False),
        sa.Column("enrolled_by", ACTOR, nullable=False),
        sa.Column("last_seen", TIME, nullable=True),
        sa.Column("agent_version", sa.String(64), nullable=True),
        sa.Column("applied_state", sa.String(16), nullable=True),
        sa.Column("applied_hash", HASH, nullable=True),
        sa.Column("applied_persona", NAME, nullable=True),
        sa.Column("applied_version", sa.Integer(), nullable=True),
        sa.Column("applied_activation_id", UUID, nullable=True),
        sa.Column("applied_error", sa.Text(), nullable=True),
        sa.Column("applied_at", TIME, nullable=True),
        sa.Column("history", JSON, nullable=True),
        sa.Column("deleted_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
    )
    op.create_table(
        "bindings",
        sa.Column("name", NAME, nullable=False),
        sa.Column("selector", JSON, nullable=False),
        sa.Column("persona", NAME, nullable=False),
        sa.Column("override", JSON, nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("updated_by", ACTOR, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_bindings"),
    )
    op.create_index("ix_bindings_persona", "bindings", ["persona"])
    op.create_table(
        "activations",
        sa.Column("id", UUID, nullable=False),
        sa.Column("instance_id", INSTANCE, nullable=False),
        sa.Column("persona", NAME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("desired_hash", HASH, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("applied_hash", HASH, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_activations"),
    )
    op.create_index(
        "ix_activations_instance_id_created_at", "activations", ["instance_id", "created_at"]
    )
    op.create_index("ix_activations_status", "activations", ["status"])
    op.create_table(
        "commands",
        sa.Column("id", UUID, nullable=False),
        sa.Column("instance_id", INSTANCE, nullable=False),
        sa.Column("command", sa.String(255), nullable=False),
        sa.Column("args", JSON, nullable=False),
        sa.Column("timeout", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("exit_status", sa.Integer(), nullable=True),
        sa.Column("refused", sa.Boolean(), nullable=False),
        sa.Column("stdout", sa.Text(), nullable=False),
        sa.Column("stderr", sa.Text(), nullable=False),
        sa.Column("stdout_truncated", sa.Boolean(), nullable=False),
        sa.Column("stderr_truncated", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("sent_at", TIME, nullable=True),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("expires_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_commands"),
    )
    op.create_index("ix_commands_instance_id_status", "commands", ["instance_id", "status"])
    op.create_index("ix_commands_status_expires_at", "commands", ["status", "expires_at"])
    op.create_table(
        "tokens",
        sa.Column("id", UUID, nullable=False),
        sa.Column("name", ACTOR, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("instance_id", INSTANCE, nullable=True),
        sa.Column("uses_left", sa.Integer(), nullable=True),
        sa.Column("tags", JSON, nullable=True),
        sa.Column("expires_at", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("secret_hash", name="uq_tokens_secret_hash"),
    )
    op.create_index("ix_tokens_instance_id", "tokens", ["instance_id"])
    op.create_table(
        "audit",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", ACTOR, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("instance_id", INSTANCE, nullable=True),
        sa.Column("persona", NAME, nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit"),
    )
    op.create_index("ix_audit_actor", "audit", ["actor"])
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_index("ix_audit_instance_id", "audit", ["instance_id"])
    op.create_index("ix_audit_persona", "audit", ["persona"])
    _append_only_audit()


def _append_only_audit() -> None:
    """Refuse UPDATE and DELETE on the audit table. Someone with the database's owner
    rights can still drop the trigger; the hash chain is what detects that."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION mien_audit_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'the audit log is append-only';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
            "FOR EACH ROW EXECUTE FUNCTION mien_audit_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_no_{event.lower()} BEFORE {event} ON audit "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_append_only ON audit")
        op.execute("DROP FUNCTION IF EXISTS mien_audit_append_only()")
    for table in (
        "audit",
        "tokens",
        "commands",
        "activations",
        "bindings",
        "instances",
        "persona_versions",
        "personas",
        "server_meta",
    ):
        op.drop_table(table)
