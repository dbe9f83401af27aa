"""The consent API (JSON, /api/v1/consent): grant, revoke, opt out, query, history.

Every route needs an API token (`phigate token add`); writes go through the
registry functions, which audit each change under the token's name.
Addresses travel in request bodies only, never in URLs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection

from gateway.consent import registry
from gateway.consent.registry import ConsentError, Grant
from gateway.consent.states import ConsentState
from gateway.mail.addresses import AddressError, normalise
from gateway.web import WebContext, tokens, web_context
from gateway.web.tokens import ApiToken

T = TypeVar("T")

# last_used_at is a write: record it at most this often per token.
_TOUCH_EVERY = 60.0
MAX_QUERY_ADDRESSES = 1000

bearer = HTTPBearer(auto_error=False, description="A token from `phigate token add`.")


def require(scope: str) -> Callable[..., Awaitable[ApiToken]]:
    """A dependency that admits a live token holding `scope` (401 / 403 otherwise)."""

    async def check(
        request: Request,
        ctx: Annotated[WebContext, Depends(web_context)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiToken:
        token = None
        if credentials is not None:
            secret = credentials.credentials
            token = await ctx.db.read(lambda conn: tokens.authenticate(conn, secret))
        return await admit(request, ctx, token, scope)

    return check


async def admit(request: Request, ctx: WebContext, token: ApiToken | None, scope: str) -> ApiToken:
    """The token presented (None: none, or an unknown or revoked one), if it holds
    `scope`; 401 / 403 otherwise. Its last use is recorded now and then."""
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing, unknown or revoked API token: send `Authorization: Bearer <token>` "
            f"with a token from `phigate token add NAME --scope {scope}`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.token_name = token.name
    if scope not in token.scopes:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"token {token.name!r} lacks scope {scope}: make a token with "
            f"`phigate token add NAME --scope {scope}`",
        )
    now = time.time()
    if token.last_used_at is None or now - token.last_used_at >= _TOUCH_EVERY:
        name = token.name
        await ctx.db.write(lambda conn: tokens.touch(conn, name, now))
    return token


Reader = Annotated[ApiToken, Depends(require(tokens.READ))]
Writer = Annotated[ApiToken, Depends(require(tokens.WRITE))]
Context = Annotated[WebContext, Depends(web_context)]


# --- request and response bodies ---------------------------------------------------


def _address(value: str) -> str:
    try:
        return normalise(value)
    except AddressError as exc:
        raise ValueError(f"not a usable e-mail address: {exc}") from None


Address = Annotated[str, AfterValidator(_address)]
PatientId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")]
Purpose = Annotated[
    str,
    Field(
        min_length=1,
        max_length=80,
        description="`marketing` or `marketing/<sub-purpose>` (see consent.purposes).",
        examples=["marketing", "marketing/flu-clinic"],
    ),
]
# "unsubscribe" is left out: it is what a recipient's own click records.
Source = Literal["api", "ehr", "web_form", "import", "admin"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Subject(_Body):
    address: Address | None = None
    patient_id: PatientId | None = None

    @model_validator(mode="after")
    def _needs_a_subject(self) -> _Subject:
        if self.address is None and self.patient_id is None:
            raise ValueError("give `address`, `patient_id` or both")
        return self


class GrantIn(_Subject):
    """A patient's authorization, recorded as given (the signed document stays elsewhere)."""

    purpose: Purpose
    granted_at: AwareDatetime | None = Field(
        None, description="When it was signed (ISO 8601 with zone); default: now."
    )
    expires_at: AwareDatetime | None = Field(None, description="End of validity; none: open.")
    source: Source = "api"
    document_ref: str | None = Field(
        None, max_length=200, description="Where the signed authorization is kept (not it)."
    )
    remuneration: bool = Field(False, description="A third party pays for the marketing.")
    remuneration_disclosed: bool = Field(
        False, description="The authorization discloses that payment."
    )

    @model_validator(mode="after")
    def _check_times(self) -> GrantIn:
        if (
            self.expires_at is not None
            and self.granted_at is not None
            and self.expires_at <= self.granted_at
        ):
            raise ValueError("expires_at must be later than granted_at")
        return self


class GrantOut(BaseModel):
    id: int = Field(description="The record's id in the registry.")


class RevocationIn(_Subject):
    """A revocation; by `patient_id` it covers every address linked to the patient."""

    purpose: Purpose
    revoked_at: AwareDatetime | None = Field(None, description="Default: now.")
    source: Source = "api"


class RevocationOut(BaseModel):
    records: int = Field(description="Revocation records written (one per address).")


class OptOutIn(_Body):
    """An opt-out: wins over any authorization until an admin records an opt-in."""

    address: Address
    purpose: Purpose = "marketing"
    source: Source = "api"


class OptOutOut(BaseModel):
    recorded: bool = Field(description="false: the address was opted out already.")


class QueryIn(_Body):
    addresses: list[Address] = Field(min_length=1, max_length=MAX_QUERY_ADDRESSES)
    purpose: Purpose


class AddressState(BaseModel):
    address: str = Field(description="The address as phigate stores it (domain lower-cased).")
    state: ConsentState = Field(
        description="opted_out wins over any authorization; none: no record."
    )


class QueryOut(BaseModel):
    purpose: str
    results: list[AddressState] = Field(description="One per address, in the order asked.")


class HistoryIn(_Subject):
    pass


class HistoryOut(BaseModel):
    records: list[dict[str, Any]] = Field(
        description="Every record of the address or patient, oldest first."
    )


# --- routes ---------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1/consent", tags=["consent"])


def _purpose(ctx: WebContext, text: str) -> str:
    """The normalised purpose; a 422 naming the field when it is not a known one."""
    try:
        return registry.validate_purpose(ctx.consent, text)
    except ConsentError as exc:
        raise _invalid("purpose", str(exc)) from None


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def _seconds(value: datetime | None, default: float) -> float:
    return value.timestamp() if value is not None else default


async def _write(ctx: WebContext, fn: Callable[[Connection], T]) -> T:
    """Run a registry change; the registry's refusal becomes a 422 for the caller."""
    try:
        return await ctx.db.write(fn)
    except ConsentError as exc:
        raise _invalid("body", str(exc)) from None


@router.post(
    "/grants",
    status_code=status.HTTP_201_CREATED,
    summary="Record an authorization",
    response_model=GrantOut,
)
async def grant(body: GrantIn, ctx: Context, token: Writer) -> GrantOut:
    now = time.time()
    purpose = _purpose(ctx, body.purpose)
    try:
        record = registry.check_grant_for(
            ctx.consent,
            Grant(
                address=body.address,
                patient_id=body.patient_id,
                purpose=purpose,
                granted_at=_seconds(body.granted_at, now),
                expires_at=body.expires_at.timestamp() if body.expires_at else None,
                source=body.source,
                document_ref=body.document_ref,
                remuneration=body.remuneration,
                remuneration_disclosed=body.remuneration_disclosed,
            ),
        )
    except ConsentError as exc:
        raise _invalid("body", str(exc)) from None
    record_id = await _write(
        ctx, lambda conn: registry.grant(conn, record, actor=f"api:{token.name}", now=now)
    )
    return GrantOut(id=record_id)


@router.post("/revocations", summary="Revoke authorizations", response_model=RevocationOut)
async def revoke(body: RevocationIn, ctx: Context, token: Writer) -> RevocationOut:
    now = time.time()
    purpose = _purpose(ctx, body.purpose)
    revoked_at = _seconds(body.revoked_at, now)
    written = await _write(
        ctx,
        lambda conn: registry.revoke(
            conn,
            address=body.address,
            patient_id=body.patient_id,
            purpose=purpose,
            revoked_at=revoked_at,
            source=body.source,
            actor=f"api:{token.name}",
            now=now,
        ),
    )
    return RevocationOut(records=written)


@router.post("/opt-outs", summary="Record an opt-out", response_model=OptOutOut)
async def opt_out(body: OptOutIn, ctx: Context, token: Writer) -> OptOutOut:
    now = time.time()
    purpose = _purpose(ctx, body.purpose)
    recorded = await _write(
        ctx,
        lambda conn: registry.opt_out(
            conn,
            address=body.address,
            purpose=purpose,
            source=body.source,
            actor=f"api:{token.name}",
            now=now,
        ),
    )
    return OptOutOut(recorded=recorded)


@router.post("/query", summary="Consent state of addresses", response_model=QueryOut)
async def query(body: QueryIn, ctx: Context, _token: Reader) -> QueryOut:
    purpose = _purpose(ctx, body.purpose)
    now = time.time()
    found = await ctx.db.read(
        lambda conn: registry.states(conn, body.addresses, purpose, now, ctx.consent)
    )
    results = [
        AddressState.model_validate({"address": a, "state": found.get(a, "none")})
        for a in body.addresses
    ]
    return QueryOut(purpose=purpose, results=results)


@router.post("/history", summary="Every record of an address or patient", response_model=HistoryOut)
async def history(body: HistoryIn, ctx: Context, _token: Reader) -> HistoryOut:
    records = await ctx.db.read(
        lambda conn: registry.history(conn, address=body.address, patient_id=body.patient_id)
    )
    return HistoryOut(records=records)
