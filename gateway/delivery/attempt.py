"""One delivery attempt of one message: what it may sign, its results and its TLS sessions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.config import RelayNetwork, relay_network_for
from gateway.delivery.client import RecipientResult
from gateway.delivery.security import HopSecurity
from gateway.delivery.tlsrpt import TlsSession
from gateway.mail.addresses import domain_of, normalise_domain
from gateway.portal.outbox import LISTENER as PORTAL_LISTENER
from gateway.store.queue import MessageForDelivery, PortalTerms


@dataclass
class Attempt:
    sender: str
    queue_id: str
    signing_domains: frozenset[str]  # DKIM signs only as one of these
    # RFC 8460 §5.3.1: TLS reports must get through even where the recipient's
    # MTA-STS or DANE fails, and their own sessions are not counted.
    honours_tls_policies: bool = True
    principal: str | None = None
    # A retry asks DNS afresh instead of reusing cached answers, so that a
    # fix to a domain's DNS takes effect on the next attempt.
    fresh_dns: bool = False
    # How mode portal keeps each recipient's copy, where the policy said.
    portal_terms: Mapping[str, PortalTerms] = field(default_factory=dict)
    results: list[RecipientResult] = field(default_factory=list)
    sessions: list[TlsSession] = field(default_factory=list)

    def session(
        self,
        domain: str,
        security: HopSecurity,
        host: str,
        address: str,
        failure: str | None,
        local_ip: str | None,
    ) -> None:
        if not self.honours_tls_policies:
            return
        self.sessions.append(
            TlsSession(
                policy_domain=domain,
                policy_type=security.reported.type,
                policy_strings=security.reported.strings,
                mx_host=host,
                receiving_ip=address,
                failure=failure,
                sending_ip=local_ip,
            )
        )


class SigningScope:
    """The domains DKIM may sign a message as, as they are now: its principal's
    (sender and extra From domains), else its relay network's. phigate's own mail
    (DSNs, TLS reports) comes from the postmaster's domain, and the mail the
    portal writes or relays (notices, codes, receipts, replies) from the
    portal's address."""

    def __init__(
        self, postmaster: str, relay_networks: Sequence[RelayNetwork], portal_from: str = ""
    ) -> None:
        self.own_domains = frozenset(
            normalise_domain(domain_of(address)) for address in (postmaster, portal_from) if address
        )
        self.relay_networks = relay_networks

    def domains_for(self, message: MessageForDelivery) -> frozenset[str]:
        if message.is_dsn or message.listener == PORTAL_LISTENER:
            return self.own_domains
        if message.principal is not None:
            return frozenset(message.principal_domains)
        relay = relay_network_for(self.relay_networks, message.client_ip)
        return frozenset(relay.author_domains if relay is not None else ())
