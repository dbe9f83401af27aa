"""Portal pickup: the recipients' sealed copies, their browser sessions, and
the portal terms of each job

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("portal", sa.Text(), nullable=True))
    op.create_table(
        "portal_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("queue_id", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("principal", sa.String(length=64), nullable=True),
        sa.Column("verifier", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("access", sa.String(length=16), nullable=False),
        sa.Column("passphrase_hash", sa.String(length=255), nullable=True),
        sa.Column("show_sender", sa.Boolean(), nullable=False),
        sa.Column("read_receipt", sa.Boolean(), nullable=False),
        sa.Column("notice_queue_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=True),
        sa.Column("replied_at", sa.Float(), nullable=True),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.Column("views", sa.Integer(), nullable=False),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("code_expires_at", sa.Float(), nullable=True),
        sa.Column("codes_sent", sa.Integer(), nullable=False),
        sa.Column("codes_window_start", sa.Float(), nullable=True),
        sa.Column("failed_codes", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.Float(), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_messages")),
        sa.UniqueConstraint("verifier", name=op.f("uq_portal_messages_verifier")),
    )
    op.create_index(
        "ix_portal_messages_queue_id", "portal_messages", ["queue_id", "recipient"], unique=True
    )
    op.create_index("ix_portal_messages_state_expires", "portal_messages", ["state", "expires_at"])
    op.create_table(
        "portal_sessions",
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"],
            ["portal_messages.id"],
            name=op.f("fk_portal_sessions_portal_id_portal_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_hash", name=op.f("pk_portal_sessions")),
    )
    op.create_index("ix_portal_sessions_portal_id", "portal_sessions", ["portal_id"])


def downgrade() -> None:
    op.drop_table("portal_sessions")
    op.drop_table("portal_messages")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("portal")
