"""policy decisions on jobs: rule, policy version, header rewrite; route holds delivery modes

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("rule", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("policy", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("rewrite", sa.Text(), nullable=True))
    # Jobs queued before policies existed went by the configured delivery.
    op.execute("UPDATE jobs SET route = 'standard' WHERE route = 'default'")


def downgrade() -> None:
    op.execute("UPDATE jobs SET route = 'default' WHERE route = 'standard'")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("rewrite")
        batch.drop_column("policy")
        batch.drop_column("rule")
