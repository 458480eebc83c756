"""``/scaleset/tokens``: the server's own API for its bearer tokens (not an ARM resource).

* ``POST /scaleset/tokens`` — ``{"role", "name"?, "expiresAt"? | "expiresIn"?}``;
  201 with the token's fields and ``token``, the secret, which is never shown again.
* ``GET /scaleset/tokens`` — ``{"value": [...]}``: ids, names, roles, times; no secrets.
* ``DELETE /scaleset/tokens/{id}`` — revoke: 200; 404 ``NotFound`` for an unknown id.

All three need a contributor token (a reader could otherwise mint a contributor
token or see who else has access). Errors use the ARM envelope like every other
route; request validation becomes 400 ``InvalidParameter`` naming the field.
No ``api-version`` is needed (one is ignored).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scaleset.api.auth import WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.errors import InvalidParameter, NotFound
from scaleset.model.durations import Duration
from scaleset.security import tokens

router = APIRouter(tags=["tokens"])

TOKENS: Final = "/scaleset/tokens"


class TokenRequest(BaseModel):
    """The body of ``POST /scaleset/tokens``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    role: tokens.Role
    name: Annotated[str | None, Field(min_length=1,
                                      max_length=tokens.MAX_DESCRIPTION_LENGTH)] = None
    expires_at: Annotated[datetime | None, Field(alias="expiresAt")] = None
    """An instant with a UTC offset, e.g. ``2027-01-01T00:00:00Z``."""
    expires_in: Annotated[Duration | None, Field(alias="expiresIn")] = None
    """An ISO 8601 duration counted from the server's clock, e.g. ``P30D``."""

    @model_validator(mode="after")
    def _one_expiry(self) -> TokenRequest:
        if self.expires_at is not None and self.expires_in is not None:
            raise ValueError("give expiresAt or expiresIn, not both")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expiresAt needs a UTC offset, e.g. 2027-01-01T00:00:00Z")
        if self.name is not None and any(not c.isprintable() for c in self.name):
            raise ValueError("name may not contain control characters")
        return self


def _expiry(body: TokenRequest, now: datetime) -> datetime | None:
    """The instant; ``create_token`` holds the limits (future, at most MAX_LIFETIME away)."""
    if body.expires_in is not None:
        # Checked here too so the error names the field the client sent.
        if body.expires_in <= timedelta(0) or body.expires_in > tokens.MAX_LIFETIME:
            raise InvalidParameter(
                f"expiresIn must be more than zero and at most {tokens.MAX_LIFETIME.days} "
                "days.", target="expiresIn")
        return now + body.expires_in
    return body.expires_at


def _wire(info: tokens.TokenInfo) -> dict[str, Any]:
    return {"id": info.token_id, "name": info.description, "role": info.role.value,
            "createdAt": info.created_at.isoformat(),
            "expiresAt": info.expires_at.isoformat() if info.expires_at else None}


@router.post(TOKENS, status_code=201, summary="Create a token (its secret is shown only here)")
def create(body: TokenRequest, _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> JSONResponse:
    now = context.clock.now()
    issued = tokens.create_token(context.store, role=body.role, description=body.name,
                                 expires_at=_expiry(body, now), now=now)
    info = tokens.TokenInfo(issued.token_id, issued.role, body.name, now, issued.expires_at)
    return JSONResponse({**_wire(info), "token": issued.token}, status_code=201,
                        headers={"Cache-Control": "no-store"})


@router.get(TOKENS, summary="List tokens (never their secrets)")
def list_(_a: object = Depends(WRITE),
          context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return {"value": [_wire(i) for i in tokens.list_tokens(context.store)]}


@router.delete(TOKENS + "/{token_id}", summary="Revoke a token")
def revoke(token_id: Annotated[str, Path(min_length=1, max_length=32)],
           _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> JSONResponse:
    if not tokens.revoke_token(context.store, token_id):
        raise NotFound(f"No token has id '{token_id}'; 'scaleset token list' shows them.",
                       target="id")
    return JSONResponse({"id": token_id, "revoked": True})
