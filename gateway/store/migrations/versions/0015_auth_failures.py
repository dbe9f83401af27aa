"""AUTH failures counted in the database, for every node on it

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision: str | None = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_failures",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last", sa.Float(), nullable=False),
        sa.Column("locked_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_auth_failures")),
    )
    op.create_index("ix_auth_failures_last", "auth_failures", ["last"])


def downgrade() -> None:
    op.drop_index("ix_auth_failures_last", table_name="auth_failures")
    op.drop_table("auth_failures")
