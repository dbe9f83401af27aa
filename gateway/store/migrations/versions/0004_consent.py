"""consent registry: authorizations and revocations, opt-outs; the purpose of a job

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("purpose", sa.String(length=80), nullable=False),
        sa.Column("effective_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("document_ref", sa.String(length=200), nullable=True),
        sa.Column("remuneration", sa.Boolean(), nullable=False),
        sa.Column("remuneration_disclosed", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    op.create_index(
        "ix_consent_records_address", "consent_records", ["address", "kind", "patient_id"]
    )
    op.create_index("ix_consent_records_patient_id", "consent_records", ["patient_id"])
    op.create_table(
        "consent_opt_outs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("purpose", sa.String(length=80), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_opt_outs")),
    )
    op.create_index("ix_consent_opt_outs_address", "consent_opt_outs", ["address"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("purpose", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("purpose")
    op.drop_index("ix_consent_opt_outs_address", table_name="consent_opt_outs")
    op.drop_table("consent_opt_outs")
    op.drop_index("ix_consent_records_patient_id", table_name="consent_records")
    op.drop_index("ix_consent_records_address", table_name="consent_records")
    op.drop_table("consent_records")
