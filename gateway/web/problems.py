"""Errors as RFC 9457 problem details (application/problem+json), for the send API.

A `Problem` is raised like an HTTPException; routes of a router made with
`ProblemRoute` answer it, FastAPI's validation errors and the token checks'
HTTPExceptions alike, as problem+json: `type`, `title`, `status`, `detail`,
and `errors` naming each field at fault and how to fix it. None of them
quotes what the client sent.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

MEDIA_TYPE = "application/problem+json"
_TYPE = "urn:phigate:problem:"


class FieldError(BaseModel):
    field: str = Field(description="Where in the request, e.g. `to[1]` or `attachments`.")
    message: str = Field(description="What is wrong and how to fix it.")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="`urn:phigate:problem:<name>`, stable for programs.")
    title: str
    status: int
    detail: str
    errors: list[FieldError] = Field(default_factory=list)
    rule: str | None = Field(default=None, description="The policy rule that refused the message.")


class Problem(HTTPException):
    """An error answered as problem+json; `name` becomes its type URI."""

    def __init__(
        self,
        status: int,
        name: str,
        detail: str,
        errors: list[FieldError] | None = None,
        *,
        rule: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, detail, dict(headers) if headers else None)
        self.name = name
        self.errors = errors or []
        self.rule = rule

    @classmethod
    def field(cls, status: int, name: str, field: str, message: str) -> Problem:
        """A problem with one field of the request: its detail names the field."""
        return cls(status, name, f"{field}: {message}", [FieldError(field=field, message=message)])

    def details(self) -> ProblemDetails:
        return ProblemDetails(
            type=_TYPE + self.name,
            title=HTTPStatus(self.status_code).phrase,
            status=self.status_code,
            detail=str(self.detail),
            errors=self.errors,
            rule=self.rule,
        )


def response(problem: Problem) -> Response:
    return JSONResponse(
        problem.details().model_dump(exclude_none=True),
        status_code=problem.status_code,
        headers=problem.headers,
        media_type=MEDIA_TYPE,
    )


def _location(loc: tuple[Any, ...]) -> str:
    """`("body", "to", 1)` as `to[1]`; a field's alias is what the client wrote."""
    parts = [str(p) for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "body"


def _field_error(error: Mapping[str, Any]) -> FieldError:
    if error["type"] == "json_invalid":  # its location is a character position
        why = error.get("ctx", {}).get("error", "")
        return FieldError(field="body", message=f"not valid JSON: {why}".rstrip(": "))
    message = error["msg"].removeprefix("Value error, ")  # pydantic's, for ValueError
    return FieldError(field=_location(tuple(error["loc"])), message=message)


def of_validation(exc: RequestValidationError) -> Problem:
    errors = [_field_error(e) for e in exc.errors()]
    named = ", ".join(dict.fromkeys(e.field for e in errors))
    return Problem(422, "invalid-request", f"the request is not valid: see {named}", errors)


_NAMES = {401: "unauthenticated", 403: "forbidden", 404: "not-found", 413: "too-large"}


def of_http(exc: HTTPException) -> Problem:
    name = _NAMES.get(exc.status_code, "http-error")
    return Problem(exc.status_code, name, str(exc.detail), headers=exc.headers)


class ProblemRoute(APIRoute):
    """A route whose errors are problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Problem as problem:
                return response(problem)
            except RequestValidationError as exc:
                return response(of_validation(exc))
            except HTTPException as exc:
                return response(of_http(exc))

        return answer


PROBLEM_RESPONSE: dict[str, Any] = {
    "model": ProblemDetails,
    "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
}
