"""The portal API for sending systems (JSON, /api/v1/portal): recall a message sent to the portal.

A token with scope portal:recall (`phigate token add NAME --scope portal`)
recalls a message's open portal copies by its queue id (the id of the 250
reply): they are unreadable at once and their content is shredded in the
same transaction, audited as portal_recalled by=api:<token name>.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from gateway.portal import lifecycle
from gateway.portal.lifecycle import LifecycleError, UnknownMessage
from gateway.store.portal import Copy
from gateway.web import tokens
from gateway.web.api import Address, Context, require
from gateway.web.tokens import ApiToken

Recaller = Annotated[ApiToken, Depends(require(tokens.RECALL))]
QueueId = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=32,
        pattern=r"^[0-9A-Za-z]+$",
        description="The message's queue id, as in phigate's 250 reply.",
        examples=["19A2B3C4D5E6F7A8B9C0D"],
    ),
]


class RecallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient: Address | None = Field(
        None, description="Recall only this recipient's copy; default: every recipient's."
    )


class RecallOut(BaseModel):
    queue_id: str
    recalled: list[str] = Field(description="The recipients whose copies were recalled now.")


class Problem(BaseModel):
    detail: str


router = APIRouter(prefix="/api/v1/portal", tags=["portal"])


@router.post(
    "/messages/{queue_id}/recall",
    summary="Recall a portal message",
    response_model=RecallOut,
    responses={
        status.HTTP_404_NOT_FOUND: {
            "model": Problem,
            "description": "No portal copy of this message (for this recipient).",
        },
        status.HTTP_409_CONFLICT: {
            "model": Problem,
            "description": "Every copy asked about is expired or recalled already.",
        },
    },
)
async def recall(
    queue_id: QueueId,
    ctx: Context,
    token: Recaller,
    body: Annotated[RecallIn | None, Body()] = None,
) -> RecallOut:
    """Make the message's open portal copies unreadable now and shred their content."""
    recipient = body.recipient if body is not None else None
    now = time.time()

    def attempt(conn: Connection) -> list[Copy] | LifecycleError:
        # A refusal is an answer, not a failed write: returned, so the writer logs no error
        # (it is raised before anything is written).
        try:
            return lifecycle.recall(conn, queue_id, recipient, f"api:{token.name}", now)
        except LifecycleError as exc:
            return exc

    outcome = await ctx.db.write(attempt)
    if isinstance(outcome, UnknownMessage):
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(outcome))
    if isinstance(outcome, LifecycleError):
        raise HTTPException(status.HTTP_409_CONFLICT, str(outcome))
    return RecallOut(queue_id=queue_id, recalled=[c.recipient for c in outcome])
