"""SMTP TLS reporting: session counters, policies, report state

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tls_policies",
        sa.Column("policy_hash", sa.String(length=64), nullable=False),
        sa.Column("policy_type", sa.String(length=16), nullable=False),
        sa.Column("policy_strings", sa.Text(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("policy_hash", name=op.f("pk_tls_policies")),
    )
    op.create_table(
        "tls_session_counts",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("policy_domain", sa.String(length=255), nullable=False),
        sa.Column("policy_hash", sa.String(length=64), nullable=False),
        sa.Column("mx_host", sa.String(length=255), nullable=False),
        sa.Column("sending_ip", sa.String(length=64), nullable=False),
        sa.Column("receiving_ip", sa.String(length=64), nullable=False),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day",
            "policy_domain",
            "policy_hash",
            "mx_host",
            "sending_ip",
            "receiving_ip",
            "result",
            name=op.f("pk_tls_session_counts"),
        ),
    )
    op.create_table(
        "tls_reports",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("policy_domain", sa.String(length=255), nullable=False),
        sa.Column("report_id", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_attempt_at", sa.Float(), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("day", "policy_domain", name=op.f("pk_tls_reports")),
    )


def downgrade() -> None:
    op.drop_table("tls_reports")
    op.drop_table("tls_session_counts")
    op.drop_table("tls_policies")
