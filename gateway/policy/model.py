"""The policy file schema, version 1, as pydantic models.

Each YAML file in the policy directory is one `PolicyFile`; the loader merges
them (gateway.policy.loader). The JSON Schema printed by `phigate policy
schema` is generated from these models, so every field's description here is
what an admin sees in an editor.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.consent.states import CONSENT_STATES
from gateway.inspect.findings import PHI_TYPES

Category = Literal["treatment", "payment", "operations", "marketing", "transactional", "unknown"]
Mode = Literal["standard", "tls", "smime", "portal"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
CATEGORIES: tuple[str, ...] = get_args(Category)
WEEKDAYS: tuple[str, ...] = get_args(Weekday)

# Rule and list names appear in audit events and SMTP replies: keep them short
# identifiers so that no free text (let alone PHI) can travel that way.
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,47}$"


def _name(value: str) -> str:
    # A validator rather than Field(pattern=...): pydantic's pattern error shows
    # the regular expression, which tells an admin little.
    if not re.fullmatch(_NAME, value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1 to 48 lower-case letters, digits, _ . -, "
            "starting with a letter or digit (write e.g. marketing-needs-consent)"
        )
    return value


Name = Annotated[
    str,
    AfterValidator(_name),
    Field(description="lower-case letters, digits, _ . -", json_schema_extra={"pattern": _NAME}),
]
_DOMAIN = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 field name: printable ASCII but ':'
_TIME_RANGE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])")
_SIZE = re.compile(r"([0-9]+)\s*(B|KB|MB|GB)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
# A reason goes into an SMTP reply line: printable ASCII, bounded.
_REASON = re.compile(r"[ -~]{1,200}")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _as_list(value: Any) -> Any:
    """`key: x` is accepted as shorthand for `key: [x]`."""
    return [value] if isinstance(value, str) else value


def _domain(value: str) -> str:
    domain = value.strip().lower().rstrip(".")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"{value!r} is not a domain (write e.g. example.org or *.example.org)")
    return domain


def _address(value: str) -> str:
    address = value.strip()
    if not _ADDRESS.fullmatch(address):
        raise ValueError(f"{value!r} is not an email address (write e.g. billing@example.org)")
    local, _, domain = address.rpartition("@")
    return f"{local}@{_domain(domain)}"


def parse_size(value: int | str) -> int:
    """Bytes from 1048576, "10MB", "500 KB" (decimal units)."""
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a size (write e.g. 10MB, 500KB or 1048576)")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()]


class CountRange(StrictModel):
    """A number range; both ends are inclusive and either may be left out."""

    at_least: int | None = Field(default=None, ge=0)
    at_most: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_end(self) -> CountRange:
        if self.at_least is None and self.at_most is None:
            raise ValueError("a range needs at_least, at_most or both (write e.g. at_least: 3)")
        return self


class SizeRange(StrictModel):
    """A size range in bytes, or with a unit: 10MB, 500KB (decimal)."""

    at_least: int | str | None = None
    at_most: int | str | None = None

    @field_validator("at_least", "at_most")
    @classmethod
    def _bytes(cls, value: int | str | None) -> int | None:
        return None if value is None else parse_size(value)

    @model_validator(mode="after")
    def _one_end(self) -> SizeRange:
        if self.at_least is None and self.at_most is None:
            raise ValueError("a range needs at_least, at_most or both (write e.g. at_least: 10MB)")
        return self


def _one_or_list(description: str, choices: tuple[str, ...] = ()) -> Any:
    """A condition field written as one value or as a list of them.

    Validated as a plain non-empty list (`_as_list` turns one value into a
    one-item list first): a union of "value | list of values" made pydantic
    report each wrong value twice, once per member, with Python type reprs
    (typing.Literal[...]) as the "expected" choices. Editors still see
    "one value or a list" in the JSON Schema.
    """
    item: dict[str, Any] = {"type": "string"}
    if choices:
        item["enum"] = list(choices)
    return Field(
        default=None,
        min_length=1,
        description=description,
        json_schema_extra={
            "anyOf": [item, {"type": "array", "items": item, "minItems": 1}, {"type": "null"}]
        },
    )


_CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "category": ("a category", CATEGORIES),
    "consent": ("a consent state", CONSENT_STATES),
    "phi_types": ("a PHI type", PHI_TYPES),
    "weekdays": ("a weekday", WEEKDAYS),
}


class Conditions(StrictModel):
    """Facts a rule tests. Every condition written must hold (AND); a list means
    "any of these"; `any_of`, `all_of` and `not` combine groups of conditions."""

    principal: list[str] | None = _one_or_list(
        "authenticated principal name(s); 'none' for unauthenticated"
    )
    sender: list[str] | None = _one_or_list("envelope sender address(es)")
    sender_domain: list[str] | None = _one_or_list(
        "sender domain(s); *.example.org matches subdomains"
    )
    from_address: list[str] | None = _one_or_list(
        "address(es) in the From header (what the reader sees; the envelope sender may differ)"
    )
    from_domain: list[str] | None = _one_or_list(
        "domain(s) of the From header address; *.example.org matches subdomains"
    )
    sender_group: list[str] | None = _one_or_list("sender group name(s)")
    recipient: list[str] | None = _one_or_list("recipient address(es)")
    recipient_domain: list[str] | None = _one_or_list(
        "recipient domain(s); *.example.org matches subdomains"
    )
    recipient_group: list[str] | None = _one_or_list("recipient group name(s)")
    category: list[str] | None = _one_or_list(
        "the message category assigned by the categories rules", CATEGORIES
    )
    category_header: list[str] | None = _one_or_list(
        "value(s) of the header named by settings.category_header (case-insensitive)"
    )
    header_present: list[str] | None = _one_or_list(
        "header name(s), any of which is present in the message"
    )
    list_unsubscribe: bool | None = Field(
        default=None, description="whether the message carries a List-Unsubscribe header"
    )
    phi: bool | None = Field(default=None, description="whether inspection found PHI")
    phi_types: list[str] | None = _one_or_list("PHI type(s), any of which was found", PHI_TYPES)
    phi_count: CountRange | None = Field(default=None, description="number of PHI findings")
    phi_in_subject: bool | None = Field(default=None, description="PHI found in the Subject")
    phi_in_attachment: bool | None = Field(default=None, description="PHI found in an attachment")
    structured_payload: bool | None = Field(
        default=None, description="an HL7 v2, FHIR or C-CDA payload is present"
    )
    unscannable: bool | None = Field(
        default=None, description="some content could not be scanned (image, encrypted, too big)"
    )
    consent: list[str] | None = _one_or_list(
        "the recipient's consent for the category's purpose", CONSENT_STATES
    )
    attachment_types: list[str] | None = _one_or_list(
        "attachment content type(s) (image/*, application/pdf) or extension(s) (.zip)"
    )
    size: SizeRange | None = Field(default=None, description="message size")
    inbound_tls: bool | None = Field(default=None, description="the client used TLS")
    authenticated: bool | None = Field(default=None, description="the client authenticated")
    time_of_day: str | None = Field(
        default=None,
        description='"HH:MM-HH:MM" in settings.timezone; may wrap midnight ("18:00-07:00")',
    )
    weekdays: list[str] | None = _one_or_list("day(s) of the week in settings.timezone", WEEKDAYS)
    any_of: list[Conditions] | None = Field(
        default=None, min_length=1, description="at least one of these groups holds"
    )
    all_of: list[Conditions] | None = Field(
        default=None, min_length=1, description="every one of these groups holds"
    )
    not_: Conditions | None = Field(
        default=None, alias="not", description="this group of conditions does not hold"
    )

    _as_lists = field_validator(
        "principal",
        "sender",
        "sender_domain",
        "from_address",
        "from_domain",
        "sender_group",
        "recipient",
        "recipient_domain",
        "recipient_group",
        "category",
        "category_header",
        "header_present",
        "phi_types",
        "consent",
        "attachment_types",
        "weekdays",
        mode="before",
    )(_as_list)

    @field_validator("sender_domain", "from_domain", "recipient_domain")
    @classmethod
    def _domains(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_domain(v) for v in value]

    @field_validator("sender", "from_address", "recipient")
    @classmethod
    def _addresses(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_address(v) for v in value]

    @field_validator("header_present")
    @classmethod
    def _headers(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for name in value:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a header name (write e.g. X-Campaign-Id)")
        return [name.lower() for name in value]

    @field_validator("category", "consent", "phi_types", "weekdays")
    @classmethod
    def _choices(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        # Checked here rather than typed as Literal: pydantic's literal errors on a
        # "one value or a list" field came out as Python type reprs.
        if value is None:
            return None
        what, choices = _CHOICES[str(info.field_name)]
        for item in value:
            if item not in choices:
                guess = difflib.get_close_matches(item, choices, n=1, cutoff=0.6)
                maybe = f"; did you mean '{guess[0]}'?" if guess else ""
                raise ValueError(
                    f"{item!r} is not {what}{maybe} (write one of {', '.join(choices)})"
                )
        return value

    @field_validator("time_of_day")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None and not _TIME_RANGE.fullmatch(value.replace(" ", "")):
            raise ValueError(f'{value!r} is not a time range (write e.g. "08:00-18:00")')
        return None if value is None else value.replace(" ", "")

    @field_validator("attachment_types")
    @classmethod
    def _attachment_types(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for item in value:
            if not (item.startswith(".") or "/" in item):
                raise ValueError(
                    f"{item!r} is neither a content type nor an extension "
                    "(write e.g. application/pdf, image/* or .zip)"
                )
        return [item.lower() for item in value]


class RecipientGroup(StrictModel):
    """Recipients by domain or address."""

    domains: list[str] = Field(
        default_factory=list, description="domains; *.example.org matches subdomains"
    )
    addresses: list[str] = Field(default_factory=list, description="full addresses")

    _domains = field_validator("domains")(lambda v: [_domain(d) for d in v])
    _addresses = field_validator("addresses")(lambda v: [_address(a) for a in v])


class SenderGroup(StrictModel):
    """Senders by principal, domain or address."""

    principals: list[str] = Field(default_factory=list, description="principal names")
    domains: list[str] = Field(
        default_factory=list, description="sender domains; *.example.org matches subdomains"
    )
    addresses: list[str] = Field(default_factory=list, description="sender addresses")

    _domains = field_validator("domains")(lambda v: [_domain(d) for d in v])
    _addresses = field_validator("addresses")(lambda v: [_address(a) for a in v])


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _sha256(value: str) -> str:
    digest = value.strip().lower().replace(":", "")
    if not _SHA256.fullmatch(digest):
        raise ValueError(
            f"{value!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed; "
            "e.g. from `openssl x509 -in CERT -noout -fingerprint -sha256`)"
        )
    return digest


class TransportRule(StrictModel):
    """Stricter transport security for recipient domains (mode mx delivery)."""

    domains: list[str] = Field(
        min_length=1, description="recipient domains; *.example.org matches subdomains"
    )
    require: Literal["dane", "verified"] | None = Field(
        default=None,
        description="dane: only DANE-authenticated TLS; verified: a CA-verified certificate "
        "even in mode standard",
    )
    pin_sha256: list[str] = Field(
        default_factory=list,
        description="accept only these certificates (SHA-256 fingerprints), whatever CA",
    )

    _domains = field_validator("domains")(lambda v: [_domain(d) for d in v])
    _pins = field_validator("pin_sha256")(lambda v: [_sha256(d) for d in v])

    @model_validator(mode="after")
    def _one_requirement(self) -> TransportRule:
        if (self.require is None) == (not self.pin_sha256):
            raise ValueError(
                "give either `require: dane|verified` or `pin_sha256: [...]` (exactly one)"
            )
        return self


class CategoryRule(StrictModel):
    """Assigns a category to a message; the first matching rule wins."""

    id: Name
    description: str | None = None
    when: Conditions | None = Field(default=None, description="omitted: always matches")
    category: Category


Subject = Literal["keep", "neutral_if_phi", "neutral"]


def _added_headers(value: dict[str, str]) -> dict[str, str]:
    seen: set[str] = set()
    for name, text in value.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a header name (write e.g. X-Secure)")
        if not _REASON.fullmatch(text):
            raise ValueError(
                f"the value of header {name} must be one line of printable ASCII "
                "(write e.g. X-Secure: encrypted)"
            )
        # Header names are case-insensitive: X-Secure and x-secure are one header.
        if name.lower() in seen:
            raise ValueError(f"header {name} is listed twice (header names ignore case)")
        seen.add(name.lower())
    return value


Access = Literal["code", "passphrase"]


class PortalBlock(StrictModel):
    """How a portal copy is protected; for a rule or defaults whose `via` names portal."""

    access: Access = Field(
        default="code",
        description="code: a one-time code mailed to the recipient proves the address; "
        "passphrase: one the sender shared out of band, sent in the header named by "
        "portal.passphrase_header of the settings",
    )
    show_sender: bool = Field(
        default=False, description="the notice names the sender's address (false: it does not)"
    )
    expiry_days: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        description="days the copy waits for pickup; omitted: portal.expiry_days of the settings",
    )
    read_receipt: bool = Field(
        default=False, description="tell the sender (without content) when the copy is opened"
    )


class Outcome(StrictModel):
    """What happens to one recipient."""

    action: Literal["deliver", "reject", "hold"] = Field(
        description="deliver by `via`; reject with `reason`; hold with `reason` until an admin "
        "releases it (then delivered like deliver)"
    )
    via: list[Mode] | None = Field(
        default=None,
        min_length=1,
        description="delivery modes tried in order, e.g. [smime, tls, portal]; "
        "standard = the relay's configured delivery, tls = verified TLS only; "
        "for hold: how the message leaves once released",
    )
    reason: str | None = Field(
        default=None,
        description="reject: shown to the sender in the SMTP reply and DSN; hold: recorded "
        "for the admin who reviews it (printable ASCII)",
    )
    subject: Subject | None = Field(
        default=None,
        description="neutral_if_phi replaces a PHI-bearing subject with settings.neutral_subject",
    )
    add_headers: dict[str, str] = Field(
        default_factory=dict, description="headers added to the delivered message"
    )
    portal: PortalBlock | None = Field(
        default=None,
        description="how a portal copy is protected; needs portal in via (own or the "
        "defaults'); omitted: the defaults' portal block",
    )

    @field_validator("via")
    @classmethod
    def _unique_modes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("via lists a mode twice (each mode is tried once)")
        return value

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        if value is not None and not _REASON.fullmatch(value):
            raise ValueError(
                "a reason is one line of at most 200 printable ASCII characters "
                "(write e.g. Marketing mail needs the recipient's authorization)"
            )
        return value

    _headers = field_validator("add_headers")(_added_headers)

    @model_validator(mode="after")
    def _fits_action(self) -> Outcome:
        _check_action(self.action, self.reason, self.via, self.subject, self.add_headers)
        if self.action == "reject" and self.portal is not None:
            raise ValueError(
                "a portal block applies to deliver and hold only: a refused message is never "
                "stored for pickup (remove the portal block from this reject action)"
            )
        return self


def _check_action(
    action: str, reason: str | None, via: Any, subject: Any, add_headers: dict[str, str]
) -> None:
    # A held message is delivered once released, so hold takes deliver's fields too.
    if action == "deliver":
        if reason is not None:
            raise ValueError("reason applies to reject and hold only (remove it)")
        return
    if action == "reject" and (via is not None or subject is not None or add_headers):
        raise ValueError(
            "via, subject and add_headers apply to deliver and hold only (remove them from "
            "this reject action)"
        )
    if reason is None:
        raise ValueError(f"a {action} action needs a reason (add reason: ...)")


class Rule(Outcome):
    """A delivery rule: the first rule whose conditions hold decides for a recipient."""

    id: Name
    description: str | None = None
    when: Conditions | None = Field(default=None, description="omitted: always matches")


def _verified_tls_only() -> list[Mode]:
    return ["tls"]


class Defaults(StrictModel):
    """What a deliver action leaves unsaid, and the decision when no rule matches."""

    action: Literal["deliver", "reject", "hold"] = "deliver"
    via: list[Mode] = Field(default_factory=_verified_tls_only, min_length=1)
    reason: str | None = None
    subject: Subject = "neutral_if_phi"
    add_headers: dict[str, str] = Field(default_factory=dict)
    portal: PortalBlock | None = Field(
        default=None,
        description="how portal copies are protected where a rule whose via names portal "
        "has no portal block of its own",
    )

    # They end up in delivered messages like a rule's: same checks (no CR/LF).
    _headers = field_validator("add_headers")(_added_headers)

    @model_validator(mode="after")
    def _fits_action(self) -> Defaults:
        # via and subject always have values here; they matter for deliver only.
        _check_action(self.action, self.reason, None, None, {})
        return self


class PolicySettings(StrictModel):
    """Policy-wide settings."""

    category_header: str = Field(
        default="X-Phigate-Category",
        description="header a sending system may set; rules test it as category_header",
    )
    neutral_subject: str = Field(
        default="Secure message", description="replaces a PHI-bearing subject"
    )
    timezone: str = Field(default="UTC", description="IANA zone for time_of_day and weekdays")
    can_spam_footer: str | None = Field(
        default=None,
        description="the organisation's postal address; when set, marketing mail without it "
        "gets a footer with the address and an unsubscribe link (CAN-SPAM)",
    )

    @field_validator("can_spam_footer")
    @classmethod
    def _postal_address(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or len(value) > 500):
            raise ValueError("write the postal address, 1 to 500 characters")
        return value

    @field_validator("neutral_subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if not _REASON.fullmatch(value):
            raise ValueError("neutral_subject must be one line of printable ASCII")
        return value

    @field_validator("category_header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a header name (write e.g. X-Phigate-Category)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        # OSError: a name too long for a file name, for example.
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"{value!r} is not a time zone (write e.g. America/New_York or UTC)"
            ) from None
        return value


class PolicyFile(StrictModel):
    """One file of a policy directory. Files are merged in name order."""

    version: Literal[1] = Field(description="schema version; always 1 for now")
    description: str | None = None
    settings: PolicySettings | None = None
    defaults: Defaults | None = None
    recipient_groups: dict[Name, RecipientGroup] = Field(default_factory=dict)
    sender_groups: dict[Name, SenderGroup] = Field(default_factory=dict)
    categories: list[CategoryRule] = Field(
        default_factory=list,
        description="category rules in order; the first match wins; none matching: unknown",
    )
    rules: list[Rule] = Field(
        default_factory=list,
        description="delivery rules in order; per recipient the first match decides",
    )
    transport: list[TransportRule] = Field(
        default_factory=list,
        description="per-domain transport requirements; the first rule naming the "
        "recipient domain applies",
    )
