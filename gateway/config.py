"""The settings file model: what an admin may write in phigate.yaml.

Every field has a default so that `phigate serve` runs with no file at all
(the embedded defaults). Unknown keys and wrong types are errors; loading and
error reporting with file/line/column live in `gateway.settings_loader`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.clients import IPAddress, unmapped
from gateway.mail.addresses import AddressError, normalise, normalise_domain, signing_domain
from gateway.mail.headers import author_domains


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def parse_host_port(value: str) -> tuple[str, int]:
    """Split "HOST:PORT" or "[V6]:PORT"; raise ValueError with a fix on bad input."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT (for example 127.0.0.1:2525 or [::1]:2525)")
    return host.strip("[]"), int(port)


class TlsFiles(_Strict):
    """Server certificate and key (PEM). Relative paths are under the data dir."""

    cert_file: str = "tls/server.crt"
    key_file: str = "tls/server.key"


class LimitsConfig(_Strict):
    max_message_size: int = Field(default=25 * 1024 * 1024, gt=0)
    # Mail to the unsubscribe address needs no AUTH, so it gets a small limit:
    # an opt-out request is a few lines.
    max_unsubscribe_message_size: int = Field(default=64 * 1024, gt=0)
    max_recipients: int = Field(default=100, gt=0)
    # Simultaneous connections to one listener, in total and from one client
    # (an IPv4 address, or an IPv6 /64: one host can hold a whole /64). A
    # client turned away at the limit is audited once a minute, with a count.
    max_connections: int = Field(default=500, gt=0)
    max_connections_per_ip: int = Field(default=50, gt=0)
    # Messages past large_message_size octets are read and processed at most
    # max_large_messages at a time; the others wait, holding that much. On SQLite
    # their sealed content is kept in a file of its own (store/contents.py).
    large_message_size: int = Field(default=1024 * 1024, gt=0)
    max_large_messages: int = Field(default=4, gt=0)
    idle_timeout: float = Field(default=300.0, gt=0)
    tls_handshake_timeout: float = Field(default=30.0, gt=0)
    # A session ends (421, the client reconnects) at its first command after
    # max_session_seconds, after max_session_commands commands, or after
    # max_session_junk_commands commands that move no mail (NOOP, RSET, VRFY,
    # EXPN, HELP, HELO, EHLO): keep-alives cannot hold a slot for good.
    max_session_seconds: float = Field(default=600.0, gt=0)
    max_session_commands: int = Field(default=10_000, gt=0)
    max_session_junk_commands: int = Field(default=100, gt=0)
    # Refused commands: the first audit_refusals_in_full of a session are
    # audited one by one, the rest counted in one event when the session
    # ends; after max_session_refusals the session is closed (421 4.7.0).
    audit_refusals_in_full: int = Field(default=5, ge=0)
    max_session_refusals: int = Field(default=20, gt=0)
    # AUTH failures: each failure delays the reply by backoff_base * 2**(n-1)
    # seconds (capped at auth_backoff_max); after auth_lockout_after failures
    # for one user from one client, or from one client for any users, that
    # client's AUTH is refused for auth_lockout_seconds, each refusal after
    # auth_backoff_max. The user can still log in from elsewhere: a stranger
    # cannot lock a principal out.
    auth_backoff_base: float = Field(default=0.5, ge=0)
    auth_backoff_max: float = Field(default=8.0, ge=0)
    auth_lockout_after: int = Field(default=5, gt=0)
    auth_lockout_seconds: float = Field(default=900.0, gt=0)


# The sending limits a principal (or a relay network, later an API token) has,
# in the order a refusal names them.
RATE_LIMIT_NAMES = (
    "messages_per_minute",
    "messages_per_hour",
    "messages_per_day",
    "recipients_per_message",
    "recipients_per_day",
)


class RateQuota(_Strict):
    """One sender's limits; 0 or null: unlimited. Under `rate_limits.principals` and
    `rate_limits.networks`, only the keys written override the defaults."""

    messages_per_minute: int | None = Field(default=300, ge=0)
    messages_per_hour: int | None = Field(default=5_000, ge=0)
    messages_per_day: int | None = Field(default=20_000, ge=0)
    # The listener's `limits.max_recipients` still applies: the smaller wins.
    recipients_per_message: int | None = Field(default=100, ge=0)
    recipients_per_day: int | None = Field(default=50_000, ge=0)

    def limit(self, name: str) -> int | None:
        """The limit `name` (one of RATE_LIMIT_NAMES); None when unlimited."""
        value: int | None = getattr(self, name)
        return value or None

    def overridden_by(self, override: RateQuota | None) -> RateQuota:
        """These limits with the keys `override` sets."""
        if override is None:
            return self
        return self.model_copy(
            update={name: getattr(override, name) for name in override.model_fields_set}
        )

    def contradiction(self) -> str | None:
        """A limit that can never be reached because a shorter one is larger, if any."""
        pairs = (
            ("messages_per_minute", "messages_per_hour"),
            ("messages_per_hour", "messages_per_day"),
            ("recipients_per_message", "recipients_per_day"),
        )
        for short, long in pairs:
            small, large = self.limit(short), self.limit(long)
            if small is not None and large is not None and small > large:
                return (
                    f"{short} ({small}) is more than {long} ({large}), "
                    f"so {short} can never be reached"
                )
        return None


class RateLimitsConfig(_Strict):
    """Per-sender sending limits, counted in the database for every process and
    node on it (docs/rate-limits.md). Over a limit: 451 4.7.1 with the seconds
    to wait (recipients in one message: 452 4.5.3)."""

    # The limits of every sender that has no override below.
    defaults: RateQuota = RateQuota()
    # By principal name: the keys written replace the defaults' for it.
    principals: dict[str, RateQuota] = Field(default_factory=dict)
    # By relay network name (`relay_networks`): mail sent without AUTH from
    # one of its networks counts against the network's limits.
    networks: dict[str, RateQuota] = Field(default_factory=dict)
    # By API token name (`phigate token ls`): mail sent through the HTTP API
    # counts against its token's limits.
    tokens: dict[str, RateQuota] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_quotas(self) -> RateLimitsConfig:
        quotas = [("defaults", self.defaults)]
        quotas += [(f"principals.{n}", self.for_principal(n)) for n in self.principals]
        quotas += [(f"networks.{n}", self.for_network(n)) for n in self.networks]
        quotas += [(f"tokens.{n}", self.for_token(n)) for n in self.tokens]
        for where, quota in quotas:
            problem = quota.contradiction()
            if problem is not None:
                raise ValueError(f"{where}: {problem}")
        return self

    def for_principal(self, name: str) -> RateQuota:
        return self.defaults.overridden_by(self.principals.get(name))

    def for_network(self, name: str) -> RateQuota:
        return self.defaults.overridden_by(self.networks.get(name))

    def for_token(self, name: str) -> RateQuota:
        return self.defaults.overridden_by(self.tokens.get(name))


def _check_network_list(value: list[str]) -> list[str]:
    for net in value:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as exc:
            raise ValueError(f"{net!r} is not a network (write e.g. 10.20.0.0/16)") from exc
    return value


class ProxyProtocolConfig(_Strict):
    """The load balancers in front of a listener that speak the PROXY protocol."""

    # Networks of the load balancers (HAProxy `send-proxy` or `send-proxy-v2`)
    # that begin every connection with a PROXY protocol header (v1 or v2)
    # naming the real client. Empty: off. When set, only these addresses may
    # connect to the listener; any other is closed at once.
    trusted: list[str] = Field(default_factory=list)
    # Seconds a load balancer has to send the whole header after connecting.
    header_timeout: float = Field(default=5.0, gt=0)

    @field_validator("trusted")
    @classmethod
    def _check_trusted(cls, value: list[str]) -> list[str]:
        return _check_network_list(value)

    @property
    def enabled(self) -> bool:
        return bool(self.trusted)

    def trusts(self, ip: str) -> bool:
        """Whether the address `ip` is one of the trusted load balancers."""
        return in_networks(self.trusted, ip)


# messages.listener of mail phigate writes itself: DSNs, TLS reports, the portal's.
RESERVED_LISTENER_NAMES = ("dsn", "tlsrpt", "portal")


class ListenerConfig(_Strict):
    """One SMTP listening socket."""

    name: str = "submission"
    address: str = "127.0.0.1:2525"
    # starttls: 587-style; implicit: 465-style (TLS from the first byte);
    # none: plain SMTP, only sensible for allow-listed networks on a trusted LAN.
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    # Whether STARTTLS must precede MAIL FROM (ignored for implicit/none).
    require_tls: bool = True
    # AUTH is always required, except that when this is true, clients in the
    # top-level `relay_networks` may send without AUTH (still only as their
    # domains). Never an open relay: nobody else can send.
    allow_networks_without_auth: bool = False
    # Accept, without AUTH, mail to the unsubscribe address (unsubscribe+TOKEN@
    # hostname) and nothing else: for the port-25 listener that receives the
    # mailto: opt-outs of List-Unsubscribe. Such mail is never stored or relayed.
    accept_unsubscribe: bool = False
    # Overrides of the top-level `limits` for this listener alone (for
    # example fewer connections on a public port 25). Connections are counted
    # per listener, so a flooded listener leaves the others free.
    limits: LimitsConfig | None = None
    # Behind a TCP load balancer: the client's address comes from the PROXY
    # protocol header the balancer sends (docs/security.md, "Behind a load
    # balancer").
    proxy_protocol: ProxyProtocolConfig = Field(default_factory=ProxyProtocolConfig)

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        parse_host_port(value)
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        # Stored mail records where it came from; these names mark phigate's own
        # mail, which is signed as phigate's domains and sent without TLS reports.
        if value.lower() in RESERVED_LISTENER_NAMES:
            raise ValueError(
                f"{value!r} names phigate's own mail ({', '.join(RESERVED_LISTENER_NAMES)}): "
                "choose another listener name, e.g. submission or mx"
            )
        return value

    @field_validator("limits")
    @classmethod
    def _check_limits(cls, value: LimitsConfig | None) -> LimitsConfig | None:
        fields = value.model_fields_set if value is not None else set()
        shared = sorted(name for name in fields if name.startswith("auth_"))
        if shared:
            raise ValueError(
                f"{', '.join(shared)} count AUTH failures across all listeners: "
                "set them under the top-level `limits`"
            )
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_host_port(self.address)

    def effective_limits(self, limits: LimitsConfig) -> LimitsConfig:
        """The top-level limits with the ones this listener overrides."""
        if self.limits is None:
            return limits
        overrides = {name: getattr(self.limits, name) for name in self.limits.model_fields_set}
        return limits.model_copy(update=overrides)


class RelayNetwork(_Strict):
    """A network allowed to relay without AUTH (legacy EHRs), still restricted to domains."""

    # Its mail is counted against `rate_limits` under this name (at most 100 characters).
    name: str = Field(min_length=1, max_length=100)
    networks: list[str]
    # Envelope sender domains (MAIL FROM); the From: header may name them too.
    domains: list[str] = Field(min_length=1)
    # Further domains the From: and Sender: headers may name (and DKIM sign as).
    from_domains: list[str] = Field(default_factory=list)

    @property
    def author_domains(self) -> tuple[str, ...]:
        return author_domains(self.domains, self.from_domains)

    @field_validator("domains", "from_domains")
    @classmethod
    def _check_domains(cls, value: list[str]) -> list[str]:
        # In the form addresses are compared in: lower case, IDNA A-labels.
        try:
            return [normalise_domain(domain) for domain in value]
        except AddressError as exc:
            raise ValueError(f"{exc} (write e.g. example.org)") from None

    @field_validator("networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        return _check_network_list(value)


# Asked at every connection and every delivery of relay-network mail: parse once.
_network = lru_cache(maxsize=1024)(partial(ipaddress.ip_network, strict=False))


def _address(ip: str) -> IPAddress | None:
    try:
        return unmapped(ipaddress.ip_address(ip))
    except ValueError:
        return None


def in_networks(networks: Sequence[str], ip: str) -> bool:
    """Whether the address `ip` is in one of `networks` (CIDR texts)."""
    address = _address(ip)
    return address is not None and any(address in _network(n) for n in networks)


def relay_network_for(networks: Sequence[RelayNetwork], ip: str) -> RelayNetwork | None:
    """The first relay network that holds the client address `ip`, if any."""
    address = _address(ip)
    if address is None:
        return None
    for relay in networks:
        if any(address in _network(n) for n in relay.networks):
            return relay
    return None


class ReceivedHeaderConfig(_Strict):
    # The Received header names phigate; the client's IP and HELO name are
    # only included when the admin opts in (internal topology stays private).
    include_client_ip: bool = False
    include_helo: bool = False


class DeliveryConfig(_Strict):
    # sandbox: capture outgoing mail in the store; smarthost: relay to one
    # host; mx: look up the recipient domain's MX records.
    mode: Literal["sandbox", "smarthost", "mx"] = "sandbox"
    smarthost: str | None = None
    # opportunistic: STARTTLS when offered (certificate not verified);
    # required: STARTTLS must succeed, certificate verified; none: plaintext.
    tls: Literal["opportunistic", "required", "none"] = "opportunistic"
    ca_file: str | None = None
    workers: int = Field(default=8, gt=0, le=256)
    # Seconds between attempts; the last value repeats until max_queue_lifetime.
    retry_schedule: list[float] = Field(
        default_factory=lambda: [60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0]
    )
    retry_jitter: float = Field(default=0.1, ge=0, le=1)
    max_queue_lifetime: float = Field(default=5 * 86400.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    connect_timeout: float = Field(default=30.0, gt=0)
    command_timeout: float = Field(default=300.0, gt=0)
    poll_interval: float = Field(default=1.0, gt=0)
    # Seconds at most a new message waits, before its 250, while every delivery
    # worker of the process is busy and claimed mail waits for one (Postfix's
    # in_flow_delay): senders slow to the delivery rate. 0: never wait.
    in_flow_delay: float = Field(default=1.0, ge=0, le=10)
    # Port used for MX delivery (25 in production; tests point it elsewhere).
    mx_port: int = Field(default=25, gt=0, lt=65536)
    # DNS servers for MX lookups ("HOST" or "HOST:PORT"); empty: the system's.
    nameservers: list[str] = Field(default_factory=list)
    # Seconds at most that the delivery workers of a process reuse a DNS answer
    # (MX, A, AAAA, and DANE's lookups), within its TTL; a retry always asks
    # DNS afresh. 0: no answer is kept.
    dns_cache_seconds: float = Field(default=60.0, ge=0)
    # MTA-STS (RFC 8461) for mode mx: honour the policies recipient domains
    # publish (enforce: only matching MX hosts, verified certificates).
    mta_sts: bool = True
    # Port of the HTTPS policy servers (443 in production; tests point it elsewhere).
    mta_sts_https_port: int = Field(default=443, gt=0, lt=65536)
    # DNSSEC-validating resolvers ("HOST" or "HOST:PORT") whose AD bit is trusted
    # for DANE (RFC 7672) TLSA lookups; empty: DANE is not used. Use a resolver on
    # this host or one reached over a trusted network only.
    dane_resolvers: list[str] = Field(default_factory=list)

    @field_validator("retry_schedule")
    @classmethod
    def _check_schedule(cls, value: list[float]) -> list[float]:
        if not value or any(v <= 0 for v in value):
            raise ValueError("retry_schedule needs at least one positive number of seconds")
        return value

    @model_validator(mode="after")
    def _check_smarthost(self) -> DeliveryConfig:
        if self.mode == "smarthost":
            if not self.smarthost:
                raise ValueError("mode smarthost needs `smarthost: HOST:PORT`")
            parse_host_port(self.smarthost)
        return self


class IdentifierPattern(_Strict):
    """An organisation's identifier format (MRN, member, account or device numbers)."""

    type: Literal["mrn", "member_id", "account_number", "device_id"]
    # A regular expression in the common subset of RE2 and Hyperscan: no
    # look-around, no back-references. Matched on word boundaries.
    pattern: str
    # The identifier counts only with one of these words within
    # inspection.context_window characters before it; empty: always counts.
    context: list[str] = Field(default_factory=list)


def _default_identifiers() -> list[IdentifierPattern]:
    return [
        IdentifierPattern(
            type="mrn",
            pattern=r"[A-Z]{0,3}[0-9]{6,10}",
            context=["mrn", "medical record", "record number", "chart", "patient id"],
        ),
        IdentifierPattern(
            type="member_id",
            pattern=r"[A-Z]{0,4}[0-9]{6,12}",
            context=["member", "subscriber", "policy", "plan id", "insurance id", "group"],
        ),
        IdentifierPattern(
            type="account_number",
            pattern=r"[0-9]{6,12}",
            context=["account", "acct", "invoice", "statement", "claim"],
        ),
        IdentifierPattern(
            type="device_id",
            pattern=r"[A-Z0-9]{2,6}-?[0-9]{4,10}",
            context=["serial", "lot", "device", "udi", "implant"],
        ),
    ]


class InspectionConfig(_Strict):
    """How messages are searched for PHI, and the budgets that keep it safe."""

    # Budgets: what exceeds one is reported "unscannable", never skipped silently.
    max_text_chars: int = Field(default=2_000_000, ge=1000)  # extracted text, whole message
    max_attachment_bytes: int = Field(default=25_000_000, ge=1000)  # one attachment, decoded
    extractor_timeout: float = Field(default=2.0, gt=0)  # seconds per attachment extractor
    extractor_memory_mb: int = Field(default=512, ge=256)  # address space of an extractor
    archive_max_depth: int = Field(default=2, ge=0)  # zip inside zip ...
    archive_max_members: int = Field(default=200, ge=1)
    archive_max_ratio: int = Field(default=100, ge=1)  # uncompressed / compressed size
    archive_max_bytes: int = Field(default=50_000_000, ge=1000)  # all members, uncompressed
    # Characters before an identifier searched for its context words.
    context_window: int = Field(default=60, ge=0, le=1000)
    identifiers: list[IdentifierPattern] = Field(default_factory=_default_identifiers)
    # The PHI rule (docs/inspection.md): identifiers of a person are PHI when
    # the message holds at least this many health terms (ICD-10 codes,
    # diagnoses, drugs, lab results, procedures) ...
    min_health_terms: int = Field(default=1, ge=1)
    # ... while direct identifiers (SSN, MRN, MBI, member id, date of birth)
    # are PHI on their own; true: only with a health term or context word.
    direct_identifiers_need_health_terms: bool = False


class TlsReportConfig(_Strict):
    """SMTP TLS reporting (RFC 8460): daily reports to domains that ask for them."""

    enabled: bool = False
    # Who the reports say they are from (organization-name, contact-info).
    organization: str = ""
    contact: str = ""


# An export cursor's name (gateway.audit.cursors).
CURSOR_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")  # RFC 5424 PRINTUSASCII
_SD_ID = re.compile(r"^[\x21-\x7e]{1,32}$")
_SD_ID_FORBIDDEN = frozenset('= ]"')


class SyslogConfig(_Strict):
    """Audit events as RFC 5424 syslog messages: `audit export --format syslog`, the forwarder."""

    # SD-ID of the structured data holding the event's fields: NAME@PEN, PEN
    # being your organisation's IANA Private Enterprise Number. 32473 is the
    # number reserved for documentation (RFC 5612): fine to start with.
    sd_id: str = "phigate@32473"
    # Syslog facility number: 13 is "log audit"; 10 authpriv; 16-23 local0-7.
    facility: int = Field(default=13, ge=0, le=23)
    app_name: str = Field(default="phigate", min_length=1, max_length=48)

    @field_validator("sd_id")
    @classmethod
    def _check_sd_id(cls, value: str) -> str:
        name, at, number = value.partition("@")
        if (
            not _SD_ID.match(value)
            or _SD_ID_FORBIDDEN & set(value)
            or not (at and name and number.isdigit())
        ):
            raise ValueError(
                f"{value!r} is not an SD-ID: write NAME@NUMBER (32 characters at most, no "
                'spaces, "=", "]" or quotes), e.g. phigate@32473 with your enterprise number'
            )
        return value

    @field_validator("app_name")
    @classmethod
    def _check_app_name(cls, value: str) -> str:
        if not _PRINTABLE.match(value):
            raise ValueError(f"{value!r} is not an APP-NAME: printable ASCII without spaces")
        return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AuditForwardConfig(_Strict):
    """The live forwarder: audit events to a syslog collector (RFC 5425), see docs/audit.md."""

    enabled: bool = False
    # The collector, HOST:PORT (6514 is syslog over TLS's port).
    address: str = ""
    # TLS, verifying the collector's certificate. false only for a collector
    # on loopback (e.g. a local rsyslog that forwards over TLS itself).
    tls: bool = True
    # PEM bundle of CAs the collector's certificate must chain to; null: the system's.
    ca_file: str | None = None
    # The name the certificate must carry; empty: the host of `address`.
    server_name: str = ""
    # A client certificate and key (PEM), for collectors that ask for one. Both or neither.
    cert_file: str | None = None
    key_file: str | None = None
    format: Literal["syslog"] = "syslog"
    # The export cursor it keeps its place with (`phigate audit export` takes other names).
    cursor: str = Field(default="forwarder", pattern=CURSOR_NAME)
    # Events read from the database and sent at a time: all it holds in memory.
    # Events not yet sent wait in the database, however long the collector is away.
    batch: int = Field(default=500, ge=1, le=10_000)
    # Seconds between looks for new events when it has caught up.
    poll_interval: float = Field(default=1.0, gt=0, le=60)
    # Seconds a sent batch must stay on an open connection before the cursor
    # passes it: a collector that drops the connection gets it again.
    confirm_after: float = Field(default=1.0, ge=0, le=60)
    connect_timeout: float = Field(default=10.0, gt=0, le=300)
    send_timeout: float = Field(default=30.0, gt=0, le=600)
    # Seconds before retrying an unreachable collector, doubling up to backoff_max.
    backoff_min: float = Field(default=1.0, gt=0)
    backoff_max: float = Field(default=300.0, gt=0)
    # One process forwards at a time: it holds the cursor this many seconds
    # and renews it; another process takes over when it runs out.
    lease_seconds: float = Field(default=30.0, ge=5, le=3600)

    @model_validator(mode="after")
    def _check(self) -> AuditForwardConfig:
        if self.enabled and not self.address:
            raise ValueError("enabled needs `address: HOST:PORT` of the syslog collector")
        if self.address:
            host, _ = parse_host_port(self.address)
            if not self.tls and not _loopback(host):
                raise ValueError(
                    "tls: false would send addresses in clear over the network: keep tls: true, "
                    "or point address at a collector on loopback"
                )
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both cert_file and key_file (or neither)")
        if self.backoff_max < self.backoff_min:
            raise ValueError("backoff_max must be at least backoff_min")
        return self


class AuditConfig(_Strict):
    """The audit trail: checkpoints the server writes, its search index, syslog form, the
    live forwarder."""

    # A checkpoint after this many new events ...
    checkpoint_every_events: int = Field(default=1000, ge=1)
    # ... or this many seconds after the last one, if any event came since.
    checkpoint_every_seconds: float = Field(default=300.0, gt=0)
    # Seconds between the indexer's passes, which derive the search keys of new
    # events off the relay's path (a search indexes what is left first) ...
    index_every_seconds: float = Field(default=10.0, gt=0, le=3600)
    # ... put off while mail is being written, but never longer than this.
    index_max_delay_seconds: float = Field(default=60.0, gt=0, le=86400)
    syslog: SyslogConfig = SyslogConfig()
    forward: AuditForwardConfig = AuditForwardConfig()


WEBHOOK_KINDS = (
    "accepted",
    "delivered",
    "deferred",
    "bounced",
    "portal_opened",
    "portal_expired",
    "consent_suppressed",
    "unsubscribed",
)


class WebhooksConfig(_Strict):
    """Signed delivery-status webhooks from a durable outbox (docs/webhooks.md)."""

    # Off: no event is queued and nothing is sent (subscriptions stay).
    enabled: bool = True
    # Networks a webhook URL may resolve into although they are not public
    # (an internal receiver), and where plain http:// is allowed. Link-local
    # and cloud metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254)
    # are refused whatever this says.
    allowed_networks: list[str] = Field(default_factory=list)
    # CAs (PEM) receivers' certificates must chain to; null: the system's.
    ca_file: str | None = None
    # The cursor the outbox is fed behind (`phigate audit export` takes other names).
    cursor: str = Field(default="webhooks", pattern=CURSOR_NAME)
    # Seconds between looks for new events and for deliveries due.
    poll_interval: float = Field(default=1.0, gt=0, le=60)
    # Audit events read per pass; deliveries claimed per pass.
    batch: int = Field(default=200, ge=1, le=10_000)
    # Requests in flight at once per server process.
    concurrency: int = Field(default=8, ge=1, le=256)
    connect_timeout: float = Field(default=5.0, gt=0, le=60)
    # Seconds for the whole request, answer included.
    timeout: float = Field(default=10.0, gt=0, le=120)
    # Retries: after retry_initial seconds, doubling up to retry_max_interval,
    # each spread by +-retry_jitter; a delivery not answered 2xx within
    # retry_for seconds of its event is dead-lettered (`webhook ls --failed`).
    retry_initial: float = Field(default=10.0, gt=0)
    retry_max_interval: float = Field(default=3600.0, gt=0)
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    retry_for: float = Field(default=86400.0, gt=0)
    # One server process feeds the outbox at a time, holding the cursor this
    # long and renewing it; another takes over if it stops.
    lease_seconds: float = Field(default=30.0, ge=1, le=3600)

    @field_validator("allowed_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        return _check_network_list(value)

    @model_validator(mode="after")
    def _check(self) -> WebhooksConfig:
        if self.retry_max_interval < self.retry_initial:
            raise ValueError("retry_max_interval must be at least retry_initial")
        return self


class PurposeConfig(_Strict):
    """An admin-defined marketing sub-purpose (e.g. marketing/flu-clinic)."""

    description: str = ""
    # Paid for by a third party: only authorizations that disclose the
    # remuneration (HIPAA 45 CFR 164.508(a)(3)(ii)) count for it.
    remunerated: bool = False


class ConsentConfig(_Strict):
    """The consent registry (see docs/consent.md)."""

    # Sub-purposes of marketing, named in mail by the purpose header as
    # "flu-clinic" and recorded as "marketing/flu-clinic". An authorization for
    # "marketing" covers every sub-purpose that is not remunerated.
    purposes: dict[str, PurposeConfig] = Field(default_factory=dict)
    # Header a sending system sets to name the sub-purpose of a marketing message.
    purpose_header: str = "X-Phigate-Purpose"


class WebConfig(_Strict):
    """phigate's web app: consent API, one-click unsubscribe (see docs/consent.md)."""

    enabled: bool = True
    address: str = "127.0.0.1:8080"
    # Serve HTTPS with the server certificate (tls.cert_file); false when a
    # reverse proxy in front terminates TLS.
    tls: bool = False
    # The public HTTPS address recipients reach, used in unsubscribe and portal links;
    # empty: https://<hostname>.
    public_url: str = ""
    # Open connections at most, per process (they share the SMTP listeners'
    # file descriptors); one more is closed as soon as it is accepted, before
    # any TLS handshake. Requests in progress are bounded by the same number
    # (503 beyond it).
    max_connections: int = Field(default=1000, ge=1, le=100_000)
    # Of those, at most this many from one client (an IPv4 address or an
    # IPv6 /64), so that one client cannot hold them all; raise it when many
    # people reach the web app through one address (a NAT, a reverse proxy).
    max_connections_per_ip: int = Field(default=100, ge=1, le=100_000)
    # Seconds a client has, after connecting and after each response, to send
    # a complete request (line, headers and body); then it is disconnected.
    # With `tls`, the TLS handshake too must end within it (the request's time
    # starts after the handshake).
    request_timeout: float = Field(default=10.0, gt=0, le=300)

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        parse_host_port(value)
        return value


class SendApiConfig(_Strict):
    """The send API (/api/v1/messages, docs/send-api.md). A message's size and
    recipients are bounded by `limits` (max_message_size, max_recipients), as over
    SMTP; its sending limits are `rate_limits`', counted per token."""

    # Attachments in one JSON message at most.
    max_attachments: int = Field(default=20, ge=0, le=1000)
    # How long a retry with the same Idempotency key gets the first answer.
    idempotency_hours: int = Field(default=24, ge=1, le=24 * 30)


class MetricsConfig(_Strict):
    """Prometheus metrics, /healthz and /readyz on a listener of their own (docs/metrics.md)."""

    enabled: bool = False
    # Keep it on loopback or a management network: scrapers only.
    address: str = "127.0.0.1:9464"
    # When set, /metrics needs `Authorization: Bearer TOKEN` (health checks never do).
    token: str | None = Field(default=None, min_length=16)

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        parse_host_port(value)
        return value


# What a person or an API token may do (see docs/reviewer.md, gateway.web.roles).
Role = Literal["admin", "operator", "auditor", "consent-writer"]


_TOTP_ROLES: list[Role] = ["admin", "auditor"]


class ReviewerConfig(_Strict):
    """Sign-in for people to the reviewer's pages (see docs/reviewer.md)."""

    # Roles that must give a TOTP code after the password; a person of one of
    # them without an enrolled code cannot sign in (`phigate user totp enroll`).
    totp_required_roles: list[Role] = Field(default_factory=lambda: _TOTP_ROLES.copy())
    # This many wrong passwords or codes in a row lock the person out for
    # lockout_minutes (or until `phigate user unlock`).
    lockout_attempts: int = Field(default=5, ge=1, le=100)
    lockout_minutes: int = Field(default=15, ge=1, le=10080)
    # Passwords and codes tried per client address per minute (per process) at
    # most, whatever the names: one password tried against many names is slowed too.
    sign_ins_per_minute: int = Field(default=10, ge=1, le=10_000)
    # A session ends after this many minutes without a request, and in any
    # case this many hours after sign-in.
    idle_minutes: int = Field(default=15, ge=1, le=1440)
    max_session_hours: float = Field(default=8.0, gt=0, le=168)
    # Minutes between the password and the TOTP code at most.
    code_minutes: int = Field(default=5, ge=1, le=60)
    # Events per page of the audit search.
    page_size: int = Field(default=50, ge=1, le=1000)


class UnsubscribeConfig(_Strict):
    """One-click unsubscribe links (RFC 8058) added to marketing mail."""

    # Days a link keeps working.
    link_days: int = Field(default=90, ge=1, le=3650)
    # Local part of the unsubscribe mailto address, at `hostname`
    # (unsubscribe+TOKEN@hostname); mail to it is accepted without AUTH.
    mailto_local_part: str = "unsubscribe"


class PortalConfig(_Strict):
    """Secure portal pickup: delivery mode `portal` (see docs/portal.md)."""

    # The organisation named in notices and on the portal's pages.
    organisation: str = Field(default="phigate", min_length=1, max_length=100)
    # A PNG or SVG logo shown on the portal's pages (relative: under data_dir); null: none.
    logo_file: str | None = None
    # The address notices, access codes and read receipts come from; empty: the postmaster.
    notice_from: str = ""
    # Admin-edited notice templates (notice.txt, notice.html, code.txt,
    # receipt.txt; Jinja2), checked at start-up; null: the built-in ones.
    templates_dir: str | None = None
    # Days a message waits for pickup unless its policy rule says otherwise.
    expiry_days: int = Field(default=30, ge=1, le=3650)
    # An access code works this long, and this many wrong codes lock the link.
    code_minutes: int = Field(default=15, ge=1, le=1440)
    code_attempts: int = Field(default=5, ge=1, le=100)
    lockout_minutes: int = Field(default=60, ge=1, le=10080)
    # Access codes mailed per link per hour at most.
    codes_per_hour: int = Field(default=5, ge=1, le=100)
    # Portal requests per client address per minute (per process) at most.
    requests_per_minute: int = Field(default=60, ge=1, le=100_000)
    # Minutes a verified browser session lasts without a new code.
    session_minutes: int = Field(default=30, ge=1, le=1440)
    # Largest reply, attachments included (bytes); replies are inspected like mail.
    max_reply_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    # Header a sending system sets to protect a message with a passphrase it
    # shared out of band (the policy must ask for it); removed before storing.
    passphrase_header: str = "X-Phigate-Portal-Passphrase"

    @field_validator("passphrase_header")
    @classmethod
    def _check_header(cls, value: str) -> str:
        if not re.fullmatch(r"[!-9;-~]+", value):  # printable ASCII, no space or colon
            raise ValueError(f"{value!r} is not a header field name")
        return value


class ArchiveStorageConfig(_Strict):
    """Where archived ciphertext is kept (see docs/archive.md)."""

    # database: in the archived_messages table; s3: in an S3-compatible object store.
    kind: Literal["database", "s3"] = "database"
    # kind s3: the service's URL (e.g. https://minio.internal:9000); null: AWS S3 itself.
    endpoint_url: str | None = None
    bucket: str | None = None
    region: str = "us-east-1"
    # Objects are named PREFIX + queue id.
    prefix: str = "archive/"
    # An AWS-style credentials file ([default] aws_access_key_id, aws_secret_access_key),
    # relative: under data_dir; null: the environment's (variables, instance role).
    # Never the secrets themselves in this file.
    credentials_file: str | None = None
    # How long one put may take before the message is refused with 451 (the client retries).
    timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(
                f"{value!r} is not a URL (write e.g. https://minio.internal:9000, "
                "or null for AWS S3)"
            )
        return value

    @model_validator(mode="after")
    def _check_bucket(self) -> ArchiveStorageConfig:
        if self.kind == "s3" and not self.bucket:
            raise ValueError("kind s3 needs `bucket: NAME` (the bucket archived content goes to)")
        return self


class RetentionConfig(_Strict):
    """How long archived mail and audit events are kept (see docs/retention.md)."""

    # The retention rules file (relative: under data_dir); null: keep everything.
    rules_file: str | None = None
    # Seconds between the server's retention runs (one process of all that share
    # the database runs each); the first comes at start-up.
    run_every_seconds: float = Field(default=3600.0, gt=0)
    # Archived messages examined per transaction of a run (one destruction record
    # per rule in each).
    batch: int = Field(default=1000, ge=1, le=100_000)


class ArchiveExportConfig(_Strict):
    """Who may take content out of the archive (see docs/archive.md)."""

    # A second person (admin or auditor) must approve each export request.
    two_person_rule: bool = False
    # Hours an export request may be approved and used after it was made.
    request_hours: int = Field(default=72, ge=1, le=8760)


class ArchiveConfig(_Strict):
    """The encrypted archive of accepted mail (see docs/archive.md)."""

    # Keep a sealed copy of every accepted message (and portal reply).
    enabled: bool = False
    # Directory of the archive's own master keys. Relative: under data_dir.
    keys_dir: str = "keys/archive"
    storage: ArchiveStorageConfig = ArchiveStorageConfig()
    retention: RetentionConfig = RetentionConfig()
    export: ArchiveExportConfig = ArchiveExportConfig()


class DkimConfig(_Strict):
    """DKIM signing of outgoing mail (see docs/dkim.md)."""

    # Keys, one directory per signing domain: DATA_DIR/dkim/<domain>/<selector>.pem.
    keys_dir: str = "dkim"
    # From-header domains that must never leave unsigned: a message from one of
    # them while it has no active key is refused at DATA with 451 (fix the key,
    # the client retries). Other domains are signed when they have a key.
    required_domains: list[str] = Field(default_factory=list)
    # Header fields signed when the message has them; changing one of them
    # later breaks the signature. From is always signed, and once more than it
    # occurs so that no second From can be added.
    sign_headers: list[str] = Field(
        default_factory=lambda: [
            "From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
            "In-Reply-To", "References", "MIME-Version", "Content-Type",
            "Content-Transfer-Encoding", "Content-Disposition", "Content-ID",
            "Content-Description", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
            "List-Help", "List-Subscribe", "List-Post", "List-Owner", "List-Archive",
        ]
    )  # fmt: skip
    # Of the signed fields, those signed once more than they occur: a copy
    # added above them (a second Subject or Reply-To that a mail reader would
    # show instead) breaks the signature. From always is.
    oversign_headers: list[str] = Field(
        default_factory=lambda: [
            "From", "Reply-To", "To", "Cc", "Subject", "Date", "Content-Type",
            "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Help",
            "List-Subscribe", "List-Post", "List-Owner", "List-Archive",
        ]
    )  # fmt: skip

    @field_validator("required_domains")
    @classmethod
    def _check_required_domains(cls, value: list[str]) -> list[str]:
        try:
            return [signing_domain(domain) for domain in value]
        except AddressError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("sign_headers")
    @classmethod
    def _check_sign_headers(cls, value: list[str]) -> list[str]:
        names = [name.lower() for name in value]
        for name in value:
            if not re.fullmatch(r"[!-9;-~]+", name):  # printable ASCII, no space or colon
                raise ValueError(f"{name!r} is not a header field name")
        if "from" not in names:
            raise ValueError("From must be signed (RFC 6376): add it to the list")
        if "dkim-signature" in names:
            raise ValueError("DKIM-Signature cannot be signed: leave it out")
        if len(set(names)) != len(names):
            raise ValueError("a header field is listed twice")
        return value

    @model_validator(mode="after")
    def _check_oversign_headers(self) -> DkimConfig:
        signed = {name.lower() for name in self.sign_headers}
        for name in self.oversign_headers:
            if name.lower() not in signed:
                raise ValueError(
                    f"oversign_headers: {name!r} is not in sign_headers; only a signed field "
                    "can be signed once more (add it to sign_headers, or leave it out here)"
                )
        return self


class SmimeConfig(_Strict):
    """S/MIME encryption to recipients' certificates (see docs/delivery.md)."""

    # Recipient certificates: `phigate certs import`, or PEM/DER files dropped here.
    certs_dir: str = "certs"
    # PEM bundle of CAs that recipient certificates must chain to; null: the
    # system's trusted CAs.
    trust_file: str | None = None
    # Content encryption. aes256-cbc: EnvelopedData with RSA PKCS#1 v1.5 key
    # transport, which every mail client reads; aes256-gcm: AuthEnvelopedData
    # with RSA-OAEP (authenticated, newer clients only); auto: GCM for
    # certificates whose S/MIME capabilities list AES-256-GCM, CBC otherwise.
    algorithm: Literal["auto", "aes256-cbc", "aes256-gcm"] = "aes256-cbc"
    # Sign before encrypting with the organisation's certificate (PEM, its
    # intermediates may follow) and unencrypted private key (PEM). Both or neither.
    sign_cert_file: str | None = None
    sign_key_file: str | None = None

    @model_validator(mode="after")
    def _check_signing_pair(self) -> SmimeConfig:
        if (self.sign_cert_file is None) != (self.sign_key_file is None):
            raise ValueError(
                "signing needs both sign_cert_file and sign_key_file (or neither, to not sign)"
            )
        return self


class VolumeAnomalyConfig(_Strict):
    """A principal sending far above its own baseline (docs/reports.md)."""

    # Robust z-score above which a day is an anomaly: (count - median) / (1.4826 * MAD)
    # of the principal's daily counts over the baseline days before it.
    threshold: float = Field(default=3.5, gt=0)
    baseline_days: int = Field(default=28, ge=7, le=366)
    # Days below this count are never flagged (a quiet principal's 0 -> 3 is noise).
    min_messages: int = Field(default=10, ge=1)
    # Days in the baseline with any mail; fewer: the principal is too new to judge.
    min_active_days: int = Field(default=7, ge=1)

    @model_validator(mode="after")
    def _check_days(self) -> VolumeAnomalyConfig:
        if self.min_active_days > self.baseline_days:
            raise ValueError("min_active_days cannot exceed baseline_days")
        return self


class AnomalyConfig(_Strict):
    """What the compliance report calls an anomaly (docs/reports.md)."""

    volume: VolumeAnomalyConfig = VolumeAnomalyConfig()
    # A recipient domain receiving PHI is first-seen when no event named it this
    # many days before the report's start.
    new_domain_lookback_days: int = Field(default=90, ge=1, le=3650)
    # This many failed AUTH attempts from one client IP within the window is a burst.
    auth_burst_failures: int = Field(default=10, ge=2)
    auth_burst_minutes: float = Field(default=10.0, gt=0, le=1440)


class ConsumerDomainsConfig(_Strict):
    """Personal mailbox domains: PHI to them is reported (docs/reports.md)."""

    # A file of domains, one a line (# comments), replacing the shipped list;
    # relative: under data_dir. null: the shipped list (gateway/reports/data).
    file: str | None = None
    # Domains added to the list in force.
    add: list[str] = Field(default_factory=list)

    @field_validator("add")
    @classmethod
    def _check_domains(cls, value: list[str]) -> list[str]:
        checked = []
        for domain in value:
            try:
                checked.append(normalise_domain(domain))
            except AddressError as exc:
                raise ValueError(
                    f"{domain!r}: {exc} (write bare domains, e.g. gmail.com)"
                ) from None
        return checked


_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class DailyReportConfig(_Strict):
    """The previous UTC day's report, mailed every day through phigate's own queue."""

    enabled: bool = False
    to: list[str] = Field(default_factory=list)
    format: Literal["html", "text", "json"] = "html"
    # When to send it, HH:MM in UTC.
    at: str = "06:00"

    @field_validator("to")
    @classmethod
    def _check_to(cls, value: list[str]) -> list[str]:
        checked = []
        for address in value:
            try:
                checked.append(normalise(address))
            except AddressError as exc:
                raise ValueError(f"{address!r}: {exc}") from None
        return checked

    @field_validator("at")
    @classmethod
    def _check_at(cls, value: str) -> str:
        if not _TIME_OF_DAY.match(value):
            raise ValueError(f"{value!r} is not a time of day: write HH:MM in UTC, e.g. 06:00")
        return value

    @model_validator(mode="after")
    def _check_enabled(self) -> DailyReportConfig:
        if self.enabled and not self.to:
            raise ValueError("an enabled daily report needs `to:` (one address or more)")
        return self

    @property
    def minute_of_day(self) -> int:
        hours, minutes = self.at.split(":")
        return int(hours) * 60 + int(minutes)


class ReportsConfig(_Strict):
    """Compliance reports: `phigate report` and the daily mail (docs/reports.md)."""

    anomalies: AnomalyConfig = AnomalyConfig()
    consumer_domains: ConsumerDomainsConfig = ConsumerDomainsConfig()
    daily: DailyReportConfig = DailyReportConfig()


NodeRole = Literal["smtp", "delivery", "web"]
NODE_ROLES: tuple[NodeRole, ...] = ("smtp", "delivery", "web")


class NodeConfig(_Strict):
    # This node's name among the nodes sharing one database (`phigate nodes ls`);
    # unique per node. Empty: the host's name and a suffix new at each start.
    name: str = Field(default="", max_length=200)
    # What this node does: smtp (the listeners), delivery (claims and sends
    # queued mail), web (the web app). `phigate serve --role` overrides it.
    roles: list[NodeRole] = Field(default_factory=lambda: list(NODE_ROLES), min_length=1)
    # Seconds between this node's heartbeats in the database; a node silent
    # for three of them is shown as stale.
    heartbeat_seconds: float = Field(default=5.0, ge=1, le=300)

    @field_validator("roles")
    @classmethod
    def _check_roles(cls, value: list[NodeRole]) -> list[NodeRole]:
        if len(value) != len(set(value)):
            raise ValueError("each role once")
        return value


class Settings(_Strict):
    """The whole settings file."""

    # Where the database, keys, certificates and credentials live.
    data_dir: str = "./phigate-data"
    # The name phigate uses in EHLO, Received and DSNs.
    hostname: str = "phigate.localdomain"
    # SQLAlchemy URL; empty means SQLite at DATA_DIR/phigate.db.
    database_url: str = ""
    # Directory of master keys (outside the database). Relative: under data_dir.
    keys_dir: str = "keys"
    # Directory of policy files; empty means the shipped default policy.
    policy_dir: str = ""
    # Where compiled PHI pattern databases are kept, so a start loads in milliseconds
    # what takes seconds to compile. Relative: under data_dir. Empty: compile at every start.
    cache_dir: str = "cache"
    tls: TlsFiles = TlsFiles()
    listeners: list[ListenerConfig] = Field(default_factory=lambda: [ListenerConfig()])
    relay_networks: list[RelayNetwork] = Field(default_factory=list)
    limits: LimitsConfig = LimitsConfig()
    rate_limits: RateLimitsConfig = RateLimitsConfig()
    received_header: ReceivedHeaderConfig = ReceivedHeaderConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    inspection: InspectionConfig = InspectionConfig()
    dkim: DkimConfig = DkimConfig()
    tls_reports: TlsReportConfig = TlsReportConfig()
    audit: AuditConfig = AuditConfig()
    consent: ConsentConfig = ConsentConfig()
    web: WebConfig = WebConfig()
    send_api: SendApiConfig = SendApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    unsubscribe: UnsubscribeConfig = UnsubscribeConfig()
    smime: SmimeConfig = SmimeConfig()
    portal: PortalConfig = PortalConfig()
    archive: ArchiveConfig = ArchiveConfig()
    reports: ReportsConfig = ReportsConfig()
    reviewer: ReviewerConfig = ReviewerConfig()
    node: NodeConfig = NodeConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    # The address DSNs come from (local part @ hostname when empty).
    postmaster: str = ""
    # Server processes sharing the listening sockets and the store (pre-fork).
    # Set it to the number of cores for throughput; connection limits are
    # split between the processes, AUTH lockouts are counted per process on
    # SQLite (on PostgreSQL in the database, by every node together).
    processes: int = Field(default=1, ge=1, le=64)
    # Create a dev principal on first start (embedded defaults only).
    dev_principal: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("rate_limits")
    @classmethod
    def _check_rate_networks(
        cls, value: RateLimitsConfig, info: ValidationInfo
    ) -> RateLimitsConfig:
        known = [relay.name for relay in info.data.get("relay_networks", [])]
        for name in value.networks:
            if name not in known:
                names = ", ".join(known) or "none is configured"
                raise ValueError(
                    f"networks.{name}: no relay network is called {name!r} "
                    f"(relay_networks: {names})"
                )
        return value

    # A field validator (not a model one) so the error is reported at `listeners`.
    @field_validator("listeners")
    @classmethod
    def _check_listener_names(cls, value: list[ListenerConfig]) -> list[ListenerConfig]:
        if not value:
            raise ValueError("at least one listener is needed")
        names = [listener.name for listener in value]
        if len(names) != len(set(names)):
            raise ValueError("listener names must be unique")
        return value

    def path(self, value: str) -> Path:
        """Resolve a path setting relative to the data dir."""
        candidate = Path(value)
        return candidate if candidate.is_absolute() else Path(self.data_dir) / candidate

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.path('phigate.db')}"

    @property
    def postmaster_address(self) -> str:
        return self.postmaster or f"postmaster@{self.hostname}"

    @property
    def portal_address(self) -> str:
        """Where the portal's notices, codes and receipts come from."""
        return self.portal.notice_from or self.postmaster_address

    @property
    def public_base_url(self) -> str:
        """The web app's address as recipients reach it, without a trailing slash."""
        return public_base_url(self.web.public_url, self.hostname)


def public_base_url(public_url: str | None, hostname: str) -> str:
    return (public_url or f"https://{hostname}").rstrip("/")
