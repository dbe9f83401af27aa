"""Which TLS each connection to a recipient domain's mail servers must have.

First, once per domain, the *requirement*: the least any connection carrying
the domain's mail may have, the strongest of the delivery mode (`tls`
verifies), `delivery.tls` and the policy's `transport` rule (every rule
demands an authenticated server). Nothing decided afterwards goes below it.

Then, for every MX host, how the server is authenticated (first that applies):

1. the `transport` rule pins certificates for the domain: only those;
2. DANE (RFC 7672): the domain's MX records validate and the host publishes
   usable TLSA records: the chain must match them (MTA-STS is not consulted);
3. the `transport` rule requires DANE, and there is none: this host cannot be
   used (the policy's next delivery mode runs instead);
4. MTA-STS (RFC 8461) in enforce mode: the host must match the policy and
   present a CA-verified certificate for its name;
5. otherwise the requirement. MTA-STS in testing mode only adds a report:
   where the requirement is below verified TLS, a verified session is tried
   first and its failure reported, then the requirement applies.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    # MTA-STS testing: the domain's requirement, used when the verified attempt
    # (made only for the report) fails. Never set when verified TLS is required.
    fallback: TlsPolicy | None = None


@dataclass(frozen=True)
class DomainSecurity:
    """What was learnt once per recipient domain and delivery attempt."""

    domain: str
    required: TlsPolicy  # the least any connection for this domain may have
    rule: TransportRequirement | None
    dane: bool
    sts: StsLookup | None


NO_POLICY = ReportedPolicy("no-policy-found")
_VERIFIED = TlsPolicy("verify", "pkix")


def required_tls(base: TlsPolicy, rules: Iterable[TransportRequirement | None]) -> TlsPolicy:
    """The strongest of `base` (the delivery mode, or `delivery.tls`) and the
    `transport` rules of the recipients' domains: any rule demands an
    authenticated server, so it raises `base` to CA-verified TLS at least."""
    if base.level != "verify" and any(rule is not None for rule in rules):
        return _VERIFIED
    return base


class TransportSecurity:
    def __init__(self, config: DeliveryConfig, sts_cache_dir: Path) -> None:
        self.dane = (
            DaneResolver(config.dane_resolvers, cache_seconds=config.dns_cache_seconds)
            if config.dane_resolvers
            else None
        )
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
        self,
        domain: str,
        base: TlsPolicy,
        rule: TransportRequirement | None,
        fresh_dns: bool = False,
    ) -> DomainSecurity:
        """`fresh_dns` asks DNS even for answers still cached (a retry)."""
        dane = self.dane is not None and await self.dane.mx_secure(domain, fresh_dns)
        sts = await self.mta_sts.lookup(domain) if self.mta_sts is not None else None
        return DomainSecurity(domain, required_tls(base, (rule,)), rule, dane, sts)

    async def for_hop(
        self, domain: DomainSecurity, host: str, port: int, fresh_dns: bool = False
    ) -> HopSecurity:
        rule = domain.rule
        if rule is not None and rule.require == "pin":
            return HopSecurity(TlsPolicy("verify", "pin", pins=rule.pins), NO_POLICY)
        if domain.dane and self.dane is not None:
            lookup = await self.dane.tlsa(host, port, fresh_dns)
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
        required = domain.required
        sts = domain.sts.policy if domain.sts is not None else None
        if sts is None or sts.mode not in ("enforce", "testing"):
            return HopSecurity(required, NO_POLICY)
        reported = ReportedPolicy("sts", tuple(sts.text.splitlines()))
        if sts.mode == "enforce":
            if not sts.matches(host):
                return HopSecurity(
                    None, reported, f"{host} is not an MX host in the MTA-STS policy"
                )
            return HopSecurity(TlsPolicy("verify", "mta-sts"), reported)
        if sts.matches(host) and required.level != "verify":
            # Testing: try what enforce would demand and report a failure; the
            # requirement, not anything weaker, applies after it.
            return HopSecurity(TlsPolicy("verify", "mta-sts"), reported, fallback=required)
        return HopSecurity(required, reported)

    async def aclose(self) -> None:
        if self.mta_sts is not None:
            await self.mta_sts.aclose()
