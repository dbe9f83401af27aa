"""Database tables. Columns hold identifiers, addresses, sizes and codes only:
message content exists solely as ciphertext in `messages.content` and
`sandbox_mail.content`. Times are UNIX seconds (portable across SQLite and
PostgreSQL). Change a table here, then add an Alembic migration."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

principals = Table(
    "principals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("secret_hash", String(255), nullable=False),
    Column("domains", Text, nullable=False),  # JSON list of sender domains
    # JSON list of further domains the From: and Sender: headers may name; NULL: none.
    Column("from_domains", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("queue_id", String(32), primary_key=True),
    Column("received_at", Float, nullable=False),
    Column("listener", String(64), nullable=False),
    Column("principal", String(64), nullable=True),
    Column("client_ip", String(64), nullable=False),
    Column("sender", String(320), nullable=False),  # "" for the null sender
    Column("size", Integer, nullable=False),
    Column("message_id", String(998), nullable=True),  # the Message-ID header
    Column("is_dsn", Boolean, nullable=False, default=False),
    Column("key_id", String(32), nullable=True),
    Column("wrapped_key", LargeBinary, nullable=True),  # NULL once shredded
    Column("content", LargeBinary, nullable=True),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "queue_id", String(32), ForeignKey("messages.queue_id", ondelete="CASCADE"), nullable=False
    ),
    Column("recipient", String(320), nullable=False),
    # queued -> active (leased) -> delivered | bounced | deleted; active -> queued on deferral;
    # held (by policy) -> queued on release, or deleted
    Column("state", String(16), nullable=False),
    # The policy's delivery modes in order, e.g. "tls,portal"; "standard" for DSNs.
    Column("route", String(64), nullable=False),
    Column("rule", String(64), nullable=True),  # the policy rule that decided; NULL: defaults
    Column("policy", String(16), nullable=True),  # version of the policy that decided
    # queue.Rewrite as JSON {"subject", "headers", "footer"}: admin-written policy text only.
    Column("rewrite", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("last_code", Integer, nullable=True),
    Column("last_status", String(16), nullable=True),
    Column("last_reply", String(255), nullable=True),
    Column("remote_host", String(255), nullable=True),
    Column("updated_at", Float, nullable=False),
    # A marketing job's purpose ("marketing/<sub>"): delivery checks consent again for it.
    Column("purpose", String(80), nullable=True),
    # queue.PortalTerms as JSON: how mode portal holds this recipient's copy.
    Column("portal", Text, nullable=True),
    Index("ix_jobs_state_next", "state", "next_attempt_at"),
    Index("ix_jobs_queue_id", "queue_id"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("event", String(32), nullable=False),
    Column("queue_id", String(32), nullable=True),
    Column("principal", String(64), nullable=True),
    Column("client_ip", String(64), nullable=True),
    Column("sender", String(320), nullable=True),
    Column("recipients", Text, nullable=True),  # JSON list
    Column("size", Integer, nullable=True),
    Column("result", String(32), nullable=False),
    Column("code", Integer, nullable=True),
    Column("detail", String(255), nullable=True),  # metadata only: never content
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # How `hash` was computed: 1 = SHA-256 (events from before the audit key),
    # 2 = HMAC-SHA256 under the audit key. See gateway.audit.trail.
    Column("chain_version", Integer, nullable=False, server_default=text("1")),
    # Who made an admin change: "cli:<OS user>", "api:<token name>"; NULL for mail events.
    Column("actor", String(128), nullable=True),
    # Search keys derived from the fields above (gateway.store.audit_facets) by
    # the indexer behind the chain (gateway.audit.indexer), not by appending:
    # the hash leaves them out, `audit verify` recomputes them. Partial
    # indexes: many events have none of them.
    Column("rule", String(64), nullable=True),
    Column("policy_version", String(32), nullable=True),
    Column("mode", String(32), nullable=True),
    Column("tls", String(16), nullable=True),
    Column("message_id", String(200), nullable=True),
    Column("about", String(32), nullable=True),  # the queue id a dsn / portal_mail is about
    Index("ix_audit_events_queue_id", "queue_id"),
    Index("ix_audit_events_ts", "ts"),
    Index("ix_audit_events_event_ts", "event", "ts"),
    Index("ix_audit_events_principal_ts", "principal", "ts"),
    Index("ix_audit_events_sender_ts", "sender", "ts"),
    *(
        Index(
            f"ix_audit_events_{name}_ts",
            name,
            "ts",
            sqlite_where=text(f"{name} IS NOT NULL"),
            postgresql_where=text(f"{name} IS NOT NULL"),
        )
        for name in ("actor", "rule", "policy_version", "mode", "tls")
    ),
    *(
        Index(
            f"ix_audit_events_{name}",
            name,
            sqlite_where=text(f"{name} IS NOT NULL"),
            postgresql_where=text(f"{name} IS NOT NULL"),
        )
        for name in ("message_id", "about")
    ),
)

# Each recipient an audit event names, lower-cased, with its domain: searching
# by recipient or domain reads these indexes instead of the JSON list. Derived
# like the search keys above, by the indexer (gateway.audit.indexer).
audit_recipients = Table(
    "audit_recipients",
    metadata,
    Column(
        "event_id",
        Integer,
        ForeignKey("audit_events.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("recipient", String(320), primary_key=True),
    Column("domain", String(255), nullable=False),
    Index("ix_audit_recipients_recipient", "recipient", "event_id"),
    Index("ix_audit_recipients_domain", "domain", "event_id"),
)

# The indexer's durable high-water mark: every event with id <= event_id has
# its search keys and recipient rows. One row (id 1), moved in the same
# transaction as the batch it covers.
audit_index_mark = Table(
    "audit_index_mark",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("event_id", Integer, nullable=False),
)

# Signed statements "the chain had `count` events up to `event_id`, whose hash
# was `hash`": a truncated or re-chained trail no longer matches them.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("event_id", Integer, nullable=False),  # 0: the chain was empty
    Column("hash", String(64), nullable=False),
    Column("count", Integer, nullable=False),
    Column("key_id", String(16), nullable=False),  # which audit key signed it
    Column("signature", String(64), nullable=False),  # HMAC-SHA256 of the fields above
)

# Where each named export of the audit trail stopped: `phigate audit export
# --cursor NAME` and the live forwarder (gateway.audit.cursors). Event ids are
# given out under the chain's lock, in commit order, so "every event after
# event_id" is exactly what a reader has not yet been given.
audit_export_cursors = Table(
    "audit_export_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("event_id", Integer, nullable=False),  # the last event handed over; 0: none yet
    Column("updated_at", Float, nullable=False),
    # The server process that forwards under this cursor, until lease_until:
    # one forwarder at a time, whatever the number of processes or nodes.
    Column("holder", String(128), nullable=True),
    Column("lease_until", Float, nullable=True),
)

sandbox_mail = Table(
    "sandbox_mail",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("queue_id", String(32), nullable=False),
    Column("sender", String(320), nullable=False),
    Column("recipients", Text, nullable=False),  # JSON list
    Column("captured_at", Float, nullable=False),
    Column("size", Integer, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("content", LargeBinary, nullable=False),
)

# --- SMTP TLS reporting (RFC 8460): session counters and report state ---------
# Only what a TLS report holds: no addresses, message ids or content.

tls_policies = Table(
    "tls_policies",
    metadata,
    Column("policy_hash", String(64), primary_key=True),  # SHA-256 of type and strings
    Column("policy_type", String(16), nullable=False),  # sts | tlsa | no-policy-found
    Column("policy_strings", Text, nullable=False),  # JSON list: STS policy lines or TLSA records
    Column("last_seen", Float, nullable=False),
)

tls_session_counts = Table(
    "tls_session_counts",
    metadata,
    Column("day", Integer, primary_key=True),  # UNIX seconds at 00:00 UTC
    Column("policy_domain", String(255), primary_key=True),
    Column("policy_hash", String(64), primary_key=True),
    Column("mx_host", String(255), primary_key=True),
    Column("sending_ip", String(64), primary_key=True),  # "" when not known
    Column("receiving_ip", String(64), primary_key=True),  # "" when not known
    Column("result", String(32), primary_key=True),  # "success" or an RFC 8460 result-type
    Column("sessions", Integer, nullable=False),
)

tls_reports = Table(
    "tls_reports",
    metadata,
    Column("day", Integer, primary_key=True),
    Column("policy_domain", String(255), primary_key=True),
    Column("report_id", String(255), nullable=False),
    # retry -> sending (leased until due_at) -> sent | no-record | abandoned; sending -> retry
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_attempt_at", Float, nullable=False),
    Column("due_at", Float, nullable=False),  # next attempt (retry) or lease end (sending)
    Column("updated_at", Float, nullable=False),
)

# --- web API tokens: only a SHA-256 of each secret is kept ----------------------

# What each List-Unsubscribe mailto address stands for (the address itself is
# too short to carry it); refreshed whenever marketing mail carries it.
unsubscribe_mailto = Table(
    "unsubscribe_mailto",
    metadata,
    Column("mailto_id", String(32), primary_key=True),  # keyed hash, base32
    Column("address", String(320), nullable=False),
    Column("purpose", String(80), nullable=False),
    Column("expires_at", Float, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False, unique=True),  # SHA-256, hex
    Column("scopes", String(128), nullable=False),  # space-separated, e.g. "consent:read"
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),  # NULL while the token works
    # The principal a token with scope `send` sends as (its domains, its limits' name).
    Column("principal", String(64), nullable=True),
)

# The send API's idempotency keys: a retry with the same key gets the first answer.
# Written in the transaction that stores the message; kept for send_api.idempotency_hours.
api_idempotency = Table(
    "api_idempotency",
    metadata,
    Column("token", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),  # SHA-256 of the request, hex
    Column("queue_id", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_api_idempotency_created_at", "created_at"),
)

# --- Consent registry (gateway.consent.registry): append-only, never updated ---
# Addresses, patient ids, purposes and references to documents held elsewhere.

consent_records = Table(
    "consent_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # recording order
    Column("kind", String(8), nullable=False),  # grant | revoke
    Column("address", String(320), nullable=True),  # NULL: the record names a patient only
    Column("patient_id", String(64), nullable=True),  # links the addresses of one patient
    Column("purpose", String(80), nullable=False),  # marketing | marketing/<sub>
    Column("effective_at", Float, nullable=False),  # granted at / revoked at
    Column("expires_at", Float, nullable=True),  # grants only; NULL: does not expire
    Column("source", String(16), nullable=False),  # web_form, ehr, import, api, admin, ...
    Column("document_ref", String(200), nullable=True),  # where the signed form is kept
    Column("remuneration", Boolean, nullable=False, default=False),
    Column("remuneration_disclosed", Boolean, nullable=False, default=False),
    Column("actor", String(128), nullable=False),  # principal, API token or CLI user
    Column("recorded_at", Float, nullable=False),
    # (kind, patient_id) too: finding an address's patients reads the index alone.
    Index("ix_consent_records_address", "address", "kind", "patient_id"),
    Index("ix_consent_records_patient_id", "patient_id"),
)

consent_opt_outs = Table(
    "consent_opt_outs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # recording order
    Column("kind", String(8), nullable=False),  # opt_out | opt_in (an admin cancels opt-outs)
    Column("address", String(320), nullable=False),
    Column("purpose", String(80), nullable=False),
    Column("source", String(16), nullable=False),
    Column("reference", String(200), nullable=True),  # e.g. the unsubscribe link used
    Column("actor", String(128), nullable=False),
    Column("recorded_at", Float, nullable=False),
    Index("ix_consent_opt_outs_address", "address"),
)

# --- Portal pickup (gateway.portal): one row per recipient's copy ---------------
# The copy is sealed under a data key that the master key AND the link's
# secret must both unwrap; only a SHA-256 verifier of the secret is kept.

portal_messages = Table(
    "portal_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("queue_id", String(32), nullable=False),  # the message it was delivered from
    Column("recipient", String(320), nullable=False),
    Column("sender", String(320), nullable=False),  # envelope sender: where replies go
    Column("principal", String(64), nullable=True),  # who sent it
    Column("verifier", String(64), nullable=False, unique=True),  # SHA-256 of the link secret
    # waiting -> opened -> replied; any of them -> expired | recalled (content shredded)
    Column("state", String(16), nullable=False),
    Column("access", String(16), nullable=False),  # code | passphrase
    Column("passphrase_hash", String(255), nullable=True),  # argon2id, access passphrase only
    Column("show_sender", Boolean, nullable=False, default=False),
    Column("read_receipt", Boolean, nullable=False, default=False),
    Column("notice_queue_id", String(32), nullable=True),  # the notice's own message
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("opened_at", Float, nullable=True),
    Column("replied_at", Float, nullable=True),
    Column("closed_at", Float, nullable=True),  # expired or recalled at
    Column("views", Integer, nullable=False, default=0),
    Column("downloads", Integer, nullable=False, default=0),
    # Access codes: only a keyed hash of the current one; counters for the limits.
    Column("code_hash", String(64), nullable=True),
    Column("code_expires_at", Float, nullable=True),
    Column("codes_sent", Integer, nullable=False, default=0),
    Column("codes_window_start", Float, nullable=True),  # start of the hour codes_sent counts
    Column("failed_codes", Integer, nullable=False, default=0),
    Column("locked_until", Float, nullable=True),
    Column("key_id", String(32), nullable=True),
    Column("wrapped_key", LargeBinary, nullable=True),  # NULL once shredded
    Column("content", LargeBinary, nullable=True),
    Index("ix_portal_messages_queue_id", "queue_id", "recipient", unique=True),
    Index("ix_portal_messages_state_expires", "state", "expires_at"),
)

# Browsers that proved control of the address: only a SHA-256 of the cookie's secret.
portal_sessions = Table(
    "portal_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column(
        "portal_id",
        Integer,
        ForeignKey("portal_messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_portal_sessions_portal_id", "portal_id"),
)

# People who sign in to the reviewer's pages (gateway.web.users): an argon2id hash
# of the password, and the TOTP secret sealed under the web key (keys/web.key).
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(32), nullable=False),  # gateway.web.roles.ROLES
    Column("password_hash", String(255), nullable=False),
    Column("totp_sealed", LargeBinary, nullable=True),  # nonce || AES-GCM(secret); NULL: none
    Column("totp_last_step", Integer, nullable=True),  # a code's time step is used once
    Column("failed_attempts", Integer, nullable=False, server_default=text("0")),
    Column("locked_until", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("disabled_at", Float, nullable=True),  # NULL while the person may sign in
)

# Signed-in browsers: only a SHA-256 of the cookie's secret. A session waiting
# for its TOTP code has `verified` false and opens no page.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("verified", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),  # the absolute lifetime's end
    Index("ix_web_sessions_user_id", "user_id"),
)

# --- Archive (gateway.archive): an encrypted copy of each accepted message -----
# Sealed under the archive's own master keys (keys/archive/), apart from the
# queue's. Rows hold metadata for search; content only as ciphertext, in
# `content` or in an object store under `object_key`. Destroyed by retention:
# `wrapped_key`, `content` and the object go, the row stays with `destroyed_at`.

archived_messages = Table(
    "archived_messages",
    metadata,
    Column("queue_id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),  # message | portal_reply
    Column("received_at", Float, nullable=False),
    Column("message_id", String(998), nullable=True),  # the Message-ID header
    Column("principal", String(64), nullable=True),
    Column("sender", String(320), nullable=False),  # envelope sender, "" for the null sender
    Column("sender_domain", String(255), nullable=False),
    Column("category", String(32), nullable=False),  # policy category (treatment, marketing ...)
    Column("phi", Boolean, nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),  # of the accepted bytes, recorded at intake
    Column("storage", String(16), nullable=False),  # database | s3
    Column("object_key", String(255), nullable=True),  # storage s3: where the ciphertext is
    Column("key_id", String(32), nullable=True),
    Column("wrapped_key", LargeBinary, nullable=True),  # NULL once destroyed
    Column("content", LargeBinary, nullable=True),  # NULL once destroyed, or when in s3
    Column("destroyed_at", Float, nullable=True),
    Column(
        "destruction_id",
        Integer,
        ForeignKey("destruction_records.id"),
        nullable=True,
    ),
    # Search filters by one of these and narrows by date: (filter, date) reads only
    # the range asked for, however busy the sender, domain or principal.
    Index("ix_archived_messages_received_at", "received_at"),
    Index("ix_archived_messages_sender", "sender", "received_at"),
    Index("ix_archived_messages_sender_domain", "sender_domain", "received_at"),
    Index("ix_archived_messages_principal", "principal", "received_at"),
    Index("ix_archived_messages_message_id", "message_id"),
    Index("ix_archived_messages_destroyed_at", "destroyed_at", "received_at"),
)

# One row per envelope recipient of an archived message: search by recipient or domain.
archived_recipients = Table(
    "archived_recipients",
    metadata,
    Column(
        "queue_id",
        String(32),
        ForeignKey("archived_messages.queue_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("recipient", String(320), primary_key=True),
    Column("domain", String(255), nullable=False),
    Index("ix_archived_recipients_recipient", "recipient"),
    Index("ix_archived_recipients_domain", "domain"),
)

# Legal holds: while a hold is not released, no archived message its selector
# covers is destroyed. The selector is JSON (queue_ids, principal, sender,
# recipient, domain, since, until, category); who placed and released it is kept.
legal_holds = Table(
    "legal_holds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_ref", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("selector", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("released_at", Float, nullable=True),  # NULL while the hold stands
    Column("released_by", String(128), nullable=True),
    Column("release_reason", Text, nullable=True),
)

# What a retention run destroyed, one row per batch: kept, and exportable.
destruction_records = Table(
    "destruction_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("destroyed_at", Float, nullable=False),
    Column("rule", String(128), nullable=False),  # the retention rule that made them due
    Column("method", String(255), nullable=False),  # how: what was deleted and overwritten
    Column("queue_ids", Text, nullable=False),  # JSON list
    Column("count", Integer, nullable=False),
    Column("actor", String(128), nullable=False),  # "cli:<user>" or "server:<node>"
    Index("ix_destruction_records_run_id", "run_id"),
)

# Requests to export archived content: who asked, why, and (under the two-person
# rule) who approved. An export uses an approved request once.
archive_requests = Table(
    "archive_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("queue_ids", Text, nullable=False),  # JSON list
    Column("reason", Text, nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", Float, nullable=False),
    Column("approved_by", String(128), nullable=True),
    Column("approved_at", Float, nullable=True),
    Column("used_at", Float, nullable=True),
)

# The server nodes sharing this database: each start registers one, its
# processes beat every node.heartbeat_seconds, a clean stop sets stopped_at.
# `phigate nodes ls` reads them; nothing in the mail path does.
nodes = Table(
    "nodes",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("roles", String(64), nullable=False),  # comma-separated: smtp,delivery,web
    Column("version", String(32), nullable=False),
    Column("processes", Integer, nullable=False),
    Column("heartbeat_seconds", Float, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("stopped_at", Float, nullable=True),
)

# `phigate policy reload` asks every node through this table: each server
# process checks it with its heartbeat and reloads its own policy directory.
policy_reloads = Table(
    "policy_reloads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("requested_at", Float, nullable=False),
    Column("requested_by", String(255), nullable=False),  # the OS user who asked
    Column("version", String(32), nullable=False),  # the version the asker validated
)

# The policy each server process of each node runs, and the last reload it
# acted on; beat_at moves with the heartbeat, so a dead process's row is ignored.
policy_states = Table(
    "policy_states",
    metadata,
    Column("node", String(255), primary_key=True),
    Column("pid", Integer, primary_key=True),
    Column("version", String(32), nullable=False),
    Column("loaded_at", Float, nullable=False),
    Column("checked_at", Float, nullable=False),  # when its last load or reload ended
    Column("error", Text, nullable=True),  # the last reload's problems; None if it worked
    Column("reload_id", Integer, nullable=False),  # policy_reloads.id acted on, 0: none
    Column("beat_at", Float, nullable=False),
)

# Failed AUTH per (user, client) and per client, when the nodes on one
# PostgreSQL database count them together (gateway.smtp.auth.AuthGuard);
# without this table each process counts in its memory.
auth_failures = Table(
    "auth_failures",
    metadata,
    Column("key", String(200), primary_key=True),  # "user:NAME from:CLIENT" or "client:CLIENT"
    Column("failures", Integer, nullable=False),  # since the last lockout
    Column("last", Float, nullable=False),
    Column("locked_until", Float, nullable=False),
    Index("ix_auth_failures_last", "last"),
)

# Messages and recipients each sender sent in each fixed window (a UTC minute,
# hour and day), one row per window and writer (a server process) that counted
# them: a process only ever updates its own rows, so the nodes on one database
# never wait on each other's locks; a window's count is the sum of its rows
# (gateway.store.rate_counts, gateway.ratelimit).
rate_counts = Table(
    "rate_counts",
    metadata,
    Column("key", String(200), primary_key=True),  # "principal:NAME", "network:NAME"
    Column("window_seconds", Integer, primary_key=True),  # 60, 3600 or 86400
    Column("window_start", Integer, primary_key=True),  # Unix time, a multiple of the above
    Column("writer", String(64), primary_key=True),  # the counting process, new at each start
    Column("messages", Integer, nullable=False),
    Column("recipients", Integer, nullable=False),
    Index("ix_rate_counts_window_start", "window_start"),
)

# The hourly and daily limits a sender reached, once per window: the first to
# insert the row audits the breach.
rate_breaches = Table(
    "rate_breaches",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("limit_name", String(32), primary_key=True),  # e.g. messages_per_hour
    Column("window_start", Integer, primary_key=True),
    Column("at", Float, nullable=False),
)

# Webhook subscriptions (gateway.webhooks): where a principal's, or one API
# token's, delivery-status events go (a token's subscription has principal "").
# The secret is sealed like content (key_id, wrapped_key, secret:
# AES-GCM under a data key the master key wraps), so key rotation re-wraps it.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("principal", String(64), nullable=False),  # "" when scoped to a token
    Column("url", String(2048), nullable=False),
    Column("events", String(255), nullable=False),  # comma-separated kinds
    Column("key_id", String(32), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("secret", LargeBinary, nullable=False),  # nonce || AES-GCM(data key, 32 bytes)
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("token", String(64), nullable=True),  # the API token's name, or NULL
    Index("ix_webhook_subscriptions_principal", "principal"),
    Index("ix_webhook_subscriptions_token", "token"),
)

# The outbox: one row per event and subscription, fed behind the audit trail's
# `webhooks` cursor and sent at least once. pending (due at next_attempt_at;
# a claimed row's next_attempt_at is its lease) -> sent | failed (dead letter).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "subscription_id",
        Integer,
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("webhook_id", String(64), nullable=False, unique=True),  # the webhook-id header
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # the JSON body: metadata only
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("sent_at", Float, nullable=True),
    Column("last_status", Integer, nullable=True),  # the receiver's HTTP status
    Column("last_error", String(255), nullable=True),  # what went wrong, without the body
    Index("ix_webhook_deliveries_state", "state", "next_attempt_at"),
    Index("ix_webhook_deliveries_subscription_id", "subscription_id"),
)

# Message templates (gateway.message_templates): the YAML an admin added, as
# written; replacing one keeps its name and counts its version up.
message_templates = Table(
    "message_templates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("version", Integer, nullable=False),  # 1, then one more per replacement
    Column("source", Text, nullable=False),  # the template file's text
    Column("sha256", String(64), nullable=False),  # of the source, hex: audited
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(128), nullable=False),  # cli:<OS user>
)
