"""``/scaleset/servicePrincipals``: the server's own API for its service principals.

* ``POST /scaleset/servicePrincipals`` — ``{"role", "name"?}``; 201 with
  ``appId``, ``displayName``, ``password``, ``tenant`` (what ``az ad sp
  create-for-rbac`` prints) plus ``objectId``, ``role``, ``createdAt``. The
  password is never shown again.
* ``GET /scaleset/servicePrincipals`` — ``{"value": [...]}`` without secrets.
* ``DELETE /scaleset/servicePrincipals/{appId}`` — 200; its access tokens are
  refused from the next request; 404 ``NotFound`` for an unknown id.

Contributors only, as for bearer tokens (a reader could otherwise mint a
contributor). No ``api-version`` is needed (one is ignored).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from scaleset.api.auth import WRITE
from scaleset.api.context import ApiContext, request_context
from scaleset.errors import NotFound
from scaleset.security import authority, principals
from scaleset.security.tokens import Role

router = APIRouter(tags=["servicePrincipals"])

PRINCIPALS: Final = "/scaleset/servicePrincipals"


class PrincipalRequest(BaseModel):
    """The body of ``POST /scaleset/servicePrincipals``."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    name: Annotated[str | None, Field(min_length=1,
                                      max_length=principals.MAX_NAME_LENGTH)] = None


@router.post(PRINCIPALS, status_code=201,
             summary="Create a service principal (its password is shown only here)")
def create(body: PrincipalRequest, _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> JSONResponse:
    now = context.clock.now()
    tenant = authority.server_identity(context.store, now=now).tenant_id
    issued = principals.create_principal(context.store, role=body.role, name=body.name,
                                         now=now)
    p = issued.principal
    return JSONResponse({"appId": p.app_id, "displayName": p.display_name,
                         "password": issued.password, "tenant": tenant,
                         "objectId": p.object_id, "role": p.role.value,
                         "createdAt": p.created_at.isoformat()},
                        status_code=201, headers={"Cache-Control": "no-store"})


@router.get(PRINCIPALS, summary="List service principals (never their secrets)")
def list_(_a: object = Depends(WRITE),
          context: ApiContext = Depends(request_context)) -> dict[str, Any]:
    return {"value": [p.to_wire() for p in principals.list_principals(context.store)]}


@router.delete(PRINCIPALS + "/{app_id}", summary="Delete a service principal (revoke it)")
def delete(app_id: Annotated[str, Path(min_length=1, max_length=64)],
           _a: object = Depends(WRITE),
           context: ApiContext = Depends(request_context)) -> JSONResponse:
    if not principals.delete_principal(context.store, app_id):
        raise NotFound(f"No service principal has appId '{app_id}'; 'scaleset sp list' "
                       "shows them.", target="appId")
    return JSONResponse({"appId": app_id, "deleted": True})
