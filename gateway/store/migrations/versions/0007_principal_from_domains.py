"""Principals' extra From-header domains

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL on existing rows: no extra domains, From: must name a sender domain.
    with op.batch_alter_table("principals") as batch:
        batch.add_column(sa.Column("from_domains", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("principals") as batch:
        batch.drop_column("from_domains")
