"""Which TLS each connection to a recipient domain's mail servers must have.

For every MX host, in this order (first that applies decides):

1. the policy's `transport` rule pins certificates for the domain: only those;
2. DANE (RFC 7672): the domain's MX records validate and the host publishes
   usable TLSA records: the chain must match them (MTA-STS is not consulted);
3. the policy's `transport` rule requires DANE, and there is none: this host
   cannot be used (the policy's next delivery mode runs instead);
4. MTA-STS (RFC 8461) in enforce mode: the host must match the policy and
   present a CA-verified certificate for its name; in testing mode the same is
   tried and failures are reported, but delivery may go on as the mode allows;
5. the policy's `transport` rule requires a verified certificate;
6. the delivery mode: `tls` verifies against the CAs, `standard` does what
   `delivery.tls` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.config import DeliveryConfig
from gateway.delivery.client import TlsPolicy
from gateway.delivery.dane import DaneResolver
from gateway.delivery.mtasts import MtaStsResolver, StsLookup
from gateway.delivery.tlsrpt import PolicyType
from gateway.policy.engine import TransportRequirement


@dataclass(frozen=True)
class ReportedPolicy:
    """The policy a TLS session ran under, as TLS reports (RFC 8460) name it."""

    type: PolicyType
    strings: tuple[str, ...] = ()


@dataclass(frozen=True)
class HopSecurity:
    """How to connect to one MX host, or why not to."""

    policy: TlsPolicy | None
    reported: ReportedPolicy
    refusal: str = ""  # why the host must not be used (policy is None)
    temporary: bool = False  # the refusal is a lookup failure: retry later
    # MTA-STS testing: what to use when the verified attempt fails.
    fallback: TlsPolicy | None = None


@dataclass(frozen=True)
class DomainSecurity:
    """What was learnt once per recipient domain and delivery attempt."""

    domain: str
    base: TlsPolicy
    rule: TransportRequirement | None
    dane: bool
    sts: StsLookup | None


NO_POLICY = ReportedPolicy("no-policy-found")


class TransportSecurity:
    def __init__(self, config: DeliveryConfig, sts_cache_dir: Path) -> None:
        self.dane = DaneResolver(config.dane_resolvers) if config.dane_resolvers else None
        self.mta_sts = (
            MtaStsResolver(
                config.nameservers,
                sts_cache_dir,
                https_port=config.mta_sts_https_port,
                ca_file=config.ca_file,
                timeout=config.connect_timeout,
            )
            if config.mta_sts and config.mode == "mx"
            else None
        )

    async def for_domain(
        self, domain: str, base: TlsPolicy, rule: TransportRequirement | None
    ) -> DomainSecurity:
        dane = self.dane is not None and await self.dane.mx_secure(domain)
        sts = await self.mta_sts.lookup(domain) if self.mta_sts is not None else None
        return DomainSecurity(domain, base, rule, dane, sts)

    async def for_hop(self, domain: DomainSecurity, host: str, port: int) -> HopSecurity:
        rule = domain.rule
        if rule is not None and rule.require == "pin":
            return HopSecurity(TlsPolicy("verify", "pin", pins=rule.pins), NO_POLICY)
        if domain.dane and self.dane is not None:
            lookup = await self.dane.tlsa(host, port)
            if lookup.temporary:
                return HopSecurity(None, NO_POLICY, lookup.temporary, temporary=True)
            if lookup.usable:
                return HopSecurity(
                    TlsPolicy("verify", "dane", tlsa=lookup.usable, names=(host, domain.domain)),
                    ReportedPolicy("tlsa", tuple(r.text() for r in lookup.records)),
                )
        if rule is not None and rule.require == "dane":
            return HopSecurity(
                None, NO_POLICY, f"policy requires DANE for {domain.domain}; {host} has none"
            )
        reported = NO_POLICY
        sts = domain.sts.policy if domain.sts is not None else None
        if sts is not None and sts.mode in ("enforce", "testing"):
            reported = ReportedPolicy("sts", tuple(sts.text.splitlines()))
            if sts.mode == "enforce":
                if not sts.matches(host):
                    return HopSecurity(
                        None, reported, f"{host} is not an MX host in the MTA-STS policy"
                    )
                return HopSecurity(TlsPolicy("verify", "mta-sts"), reported)
            if sts.matches(host) and domain.base.level != "verify":
                # Testing: try what enforce would demand, report a failure, go on.
                return HopSecurity(TlsPolicy("verify", "mta-sts"), reported, fallback=domain.base)
        if (rule is not None and rule.require == "verified") or domain.base.level == "verify":
            return HopSecurity(TlsPolicy("verify", "pkix"), reported)
        return HopSecurity(domain.base, reported)

    async def aclose(self) -> None:
        if self.mta_sts is not None:
            await self.mta_sts.aclose()
