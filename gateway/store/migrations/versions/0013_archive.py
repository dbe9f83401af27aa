"""The archive: sealed copies of accepted mail, legal holds, destruction records, export requests

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "destruction_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("destroyed_at", sa.Float(), nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=255), nullable=False),
        sa.Column("queue_ids", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_destruction_records")),
    )
    op.create_index("ix_destruction_records_run_id", "destruction_records", ["run_id"])
    op.create_table(
        "archived_messages",
        sa.Column("queue_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("principal", sa.String(length=64), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("sender_domain", sa.String(length=255), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("phi", sa.Boolean(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage", sa.String(length=16), nullable=False),
        sa.Column("object_key", sa.String(length=255), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("destroyed_at", sa.Float(), nullable=True),
        sa.Column("destruction_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["destruction_id"],
            ["destruction_records.id"],
            name=op.f("fk_archived_messages_destruction_id_destruction_records"),
        ),
        sa.PrimaryKeyConstraint("queue_id", name=op.f("pk_archived_messages")),
    )
    for name, columns in (
        ("received_at", ["received_at"]),
        ("sender", ["sender", "received_at"]),
        ("sender_domain", ["sender_domain", "received_at"]),
        ("principal", ["principal", "received_at"]),
        ("message_id", ["message_id"]),
        ("destroyed_at", ["destroyed_at", "received_at"]),
    ):
        op.create_index(f"ix_archived_messages_{name}", "archived_messages", columns)
    op.create_table(
        "archived_recipients",
        sa.Column("queue_id", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["archived_messages.queue_id"],
            name=op.f("fk_archived_recipients_queue_id_archived_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("queue_id", "recipient", name=op.f("pk_archived_recipients")),
    )
    op.create_index("ix_archived_recipients_recipient", "archived_recipients", ["recipient"])
    op.create_index("ix_archived_recipients_domain", "archived_recipients", ["domain"])
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_ref", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("selector", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("released_at", sa.Float(), nullable=True),
        sa.Column("released_by", sa.String(length=128), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
    )
    op.create_table(
        "archive_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("queue_ids", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", sa.Float(), nullable=False),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.Column("approved_at", sa.Float(), nullable=True),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_requests")),
    )


def downgrade() -> None:
    op.drop_table("archive_requests")
    op.drop_table("legal_holds")
    op.drop_index("ix_archived_recipients_domain", table_name="archived_recipients")
    op.drop_index("ix_archived_recipients_recipient", table_name="archived_recipients")
    op.drop_table("archived_recipients")
    for name in (
        "destroyed_at",
        "message_id",
        "principal",
        "sender_domain",
        "sender",
        "received_at",
    ):
        op.drop_index(f"ix_archived_messages_{name}", table_name="archived_messages")
    op.drop_table("archived_messages")
    op.drop_index("ix_destruction_records_run_id", table_name="destruction_records")
    op.drop_table("destruction_records")
