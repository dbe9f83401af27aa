"""Audit search: who made each admin change, search keys, a recipient index

Adds `audit_events.actor` (hashed, like every field, in events that have it)
and the search keys derived from each event (rule, policy_version, mode, tls,
message_id, about: outside the hash, checked by `audit verify`), with their
indexes, `audit_recipients`, and the indexer's high-water mark at 0. Existing
events are indexed like new ones, by the indexer (gateway.audit.indexer): by
the server in the background, or by the first `phigate audit search`; their
hashes do not change.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None

_KEYED = ("actor", "rule", "policy_version", "mode", "tls")
_LOOKUP = ("message_id", "about")


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("actor", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("rule", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("policy_version", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("mode", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("tls", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("message_id", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("about", sa.String(length=32), nullable=True))
    op.create_table(
        "audit_recipients",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["audit_events.id"],
            name=op.f("fk_audit_recipients_event_id_audit_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "recipient", name=op.f("pk_audit_recipients")),
    )
    mark = op.create_table(
        "audit_index_mark",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_index_mark")),
    )
    op.bulk_insert(mark, [{"id": 1, "event_id": 0}])
    op.create_index("ix_audit_recipients_recipient", "audit_recipients", ["recipient", "event_id"])
    op.create_index("ix_audit_recipients_domain", "audit_recipients", ["domain", "event_id"])
    op.create_index("ix_audit_events_ts", "audit_events", ["ts"])
    op.create_index("ix_audit_events_event_ts", "audit_events", ["event", "ts"])
    op.create_index("ix_audit_events_principal_ts", "audit_events", ["principal", "ts"])
    op.create_index("ix_audit_events_sender_ts", "audit_events", ["sender", "ts"])
    for name in _KEYED:
        where = sa.text(f"{name} IS NOT NULL")
        op.create_index(
            f"ix_audit_events_{name}_ts",
            "audit_events",
            [name, "ts"],
            sqlite_where=where,
            postgresql_where=where,
        )
    for name in _LOOKUP:
        where = sa.text(f"{name} IS NOT NULL")
        op.create_index(
            f"ix_audit_events_{name}",
            "audit_events",
            [name],
            sqlite_where=where,
            postgresql_where=where,
        )


def downgrade() -> None:
    for name in _LOOKUP:
        op.drop_index(f"ix_audit_events_{name}", table_name="audit_events")
    for name in _KEYED:
        op.drop_index(f"ix_audit_events_{name}_ts", table_name="audit_events")
    for name in ("sender_ts", "principal_ts", "event_ts", "ts"):
        op.drop_index(f"ix_audit_events_{name}", table_name="audit_events")
    op.drop_table("audit_index_mark")
    op.drop_table("audit_recipients")
    with op.batch_alter_table("audit_events") as batch:
        for name in ("about", "message_id", "tls", "mode", "policy_version", "rule", "actor"):
            batch.drop_column(name)
