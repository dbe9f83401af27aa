"""Unsubscribe mailto addresses

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unsubscribe_mailto",
        sa.Column("mailto_id", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("purpose", sa.String(length=80), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("mailto_id", name=op.f("pk_unsubscribe_mailto")),
    )


def downgrade() -> None:
    op.drop_table("unsubscribe_mailto")
