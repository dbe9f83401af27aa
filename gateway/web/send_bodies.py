"""The send API's request and response bodies (gateway.web.send): what a sending
system posts and what it gets back, with the checks pydantic makes of each field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway.web.api import Address


def _one_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("may not contain line breaks")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]
IdempotencyKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any printable ASCII without spaces, e.g. a UUID; unique per message.",
    ),
]


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: OneLine = Field(min_length=1, max_length=255, examples=["results.pdf"])
    content_type: str = Field(
        "application/octet-stream",
        max_length=127,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$",
        examples=["application/pdf"],
    )
    content: str = Field(description="The file, base64 (RFC 4648).")


class MessageIn(BaseModel):
    """A message to send; phigate writes its Message-ID and Date."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: Address = Field(
        alias="from",
        description="The sender: envelope sender and From:, in a domain of the token's principal.",
    )
    from_name: OneLine | None = Field(
        default=None, max_length=200, description="From:'s display name."
    )
    to: list[Address] = Field(default_factory=list)
    cc: list[Address] = Field(default_factory=list)
    bcc: list[Address] = Field(
        default_factory=list, description="Recipients kept out of the message's header."
    )
    subject: OneLine = Field("", max_length=998)
    text: str | None = Field(default=None, description="The plain-text body.")
    html: str | None = Field(
        default=None, description="The HTML body (with `text`: its alternative)."
    )
    attachments: list[AttachmentIn] = Field(default_factory=list)
    headers: dict[str, OneLine] = Field(
        default_factory=dict,
        description="Further header fields (e.g. Reply-To, In-Reply-To, X-...); not From, "
        "To, Cc, Bcc, Subject, Date, Message-ID, MIME or trace fields.",
    )
    category: OneLine | None = Field(
        None,
        max_length=64,
        description="The policy's category header (e.g. `marketing`); it can only restrict.",
    )
    purpose: OneLine | None = Field(
        None, max_length=80, description="A configured marketing sub-purpose, e.g. `flu-clinic`."
    )
    idempotency_key: IdempotencyKey | None = Field(
        None, description="A retry with the same key gets the first answer, not a second message."
    )
    template: str | None = Field(
        None,
        max_length=64,
        description="A message template (`phigate template ls`, docs/templates.md): subject, "
        "text and html are rendered from it with `variables`, and are not given here.",
    )
    variables: dict[str, Any] = Field(
        default_factory=dict,
        description="The template's variables by name, each of its declared type. Those the "
        "template declares PHI make the policy treat the message as PHI.",
    )


class RecipientOut(BaseModel):
    address: str
    status: str = Field(
        description="At acceptance: accepted or refused; later: queued, deferred, sending, "
        "held, delivered, bounced, cancelled or refused."
    )
    rule: str | None = Field(
        default=None, description="The policy rule that refused this recipient."
    )
    attempts: int | None = None
    last_code: int | None = Field(
        default=None, description="The receiving server's last reply code."
    )
    last_status: str | None = Field(
        default=None, description="Its enhanced status code, e.g. 4.2.2."
    )
    updated_at: datetime | None = None


class MessageOut(BaseModel):
    queue_id: str = Field(description="phigate's id of the stored message, as in a 250 reply.")
    received_at: datetime | None = None
    recipients: list[RecipientOut]
