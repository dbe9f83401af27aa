"""Message templates; webhook subscriptions scoped to an API token

Revision ID: 0020
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision: str | None = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_templates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_message_templates_name")),
    )
    # A subscription names a principal or an API token; one of a token keeps
    # principal "" (no principal has an empty name), so the table is altered in
    # place: recreating it would cascade into its deliveries on SQLite.
    op.add_column("webhook_subscriptions", sa.Column("token", sa.String(length=64), nullable=True))
    op.create_index("ix_webhook_subscriptions_token", "webhook_subscriptions", ["token"])


def downgrade() -> None:
    op.drop_index("ix_webhook_subscriptions_token", "webhook_subscriptions")
    op.execute("DELETE FROM webhook_subscriptions WHERE token IS NOT NULL")
    # In place (SQLite 3.35+ drops a column itself): recreating the table would
    # cascade into the other subscriptions' deliveries.
    op.drop_column("webhook_subscriptions", "token")
    op.drop_table("message_templates")
