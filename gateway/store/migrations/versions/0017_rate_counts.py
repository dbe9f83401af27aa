"""Sending rate limits: counts per sender, window and process; breaches once per window

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision: str | None = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_counts",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.Integer(), nullable=False),
        sa.Column("writer", sa.String(length=64), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "key", "window_seconds", "window_start", "writer", name=op.f("pk_rate_counts")
        ),
    )
    op.create_index("ix_rate_counts_window_start", "rate_counts", ["window_start"])
    op.create_table(
        "rate_breaches",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("limit_name", sa.String(length=32), nullable=False),
        sa.Column("window_start", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", "limit_name", "window_start", name=op.f("pk_rate_breaches")),
    )


def downgrade() -> None:
    op.drop_table("rate_breaches")
    op.drop_index("ix_rate_counts_window_start", table_name="rate_counts")
    op.drop_table("rate_counts")
