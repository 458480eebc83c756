"""ARM's error envelope, and the one place exceptions become HTTP responses.

``{"error": {"code", "message", "target", "details": [...]}}`` with
``Content-Type: application/json``. Routes raise ``ScalesetError``
subclasses; they never build error bodies themselves.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from scaleset.api import access
from scaleset.api.vitals import STORAGE_RETRY_AFTER_SECONDS, caused_by_full_disk, vitals_of
from scaleset.errors import ScalesetError
from scaleset.store.repository import ConflictError, StorageFull, StoreError

log = logging.getLogger("scaleset.api")

_HTTP_CODES = {400: "BadRequest", 401: "AuthenticationFailed", 403: "AuthorizationFailed",
               404: "NotFound", 405: "MethodNotAllowed", 409: "Conflict",
               408: "RequestTimeout", 412: "PreconditionFailed", 413: "RequestEntityTooLarge",
               415: "UnsupportedMediaType", 429: "TooManyRequests", 507: "InsufficientStorage"}
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def body(code: str, message: str, *, target: str | None = None,
         details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if target:
        error["target"] = target
    if details:
        error["details"] = details
    return {"error": error}


def response(status: int, code: str, message: str, *, target: str | None = None,
             details: list[dict[str, Any]] | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body(code, message, target=target, details=details), status_code=status,
                        headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "request"


def validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    details = []
    for e in errors:
        if e.get("type") == "json_invalid":  # the body is not JSON at all
            reason = (e.get("ctx") or {}).get("error", "")
            details.append({"code": "InvalidRequestContent", "target": "body",
                            "message": f"the request body is not valid JSON ({reason}); send "
                                       "a JSON object with Content-Type: application/json"})
            continue
        target = _location(tuple(e["loc"]))
        details.append({"code": "InvalidParameter", "target": target,
                        "message": f"{target}: {e['msg']}"})
    return details


def invalid_body(errors: list[Any]) -> JSONResponse:
    details = validation_details(errors)
    first = details[0] if details else {"target": "request", "message": "invalid request"}
    return response(400, "InvalidParameter", first["message"] + (
        f" (and {len(details) - 1} more problems, see details)" if len(details) > 1 else ""),
        target=first["target"], details=details)


def storage_full(request: Request, exc: BaseException) -> JSONResponse:
    """507 for a write that found no space: nothing of it was kept (the database rolled
    back; an image being stored is removed), and the same request succeeds once an
    operator frees space. Not a 400 (the request is fine) nor a 503 (reads still work)."""
    log.error("no space left for %s %s: %s", request.method, request.url.path, exc)
    vitals_of(request.app).storage_full(str(exc))
    return response(507, "InsufficientStorage", (
        f"The server has no space left to store this change ({exc}); nothing was changed. "
        "Reads keep working; free space on the server's data directory and retry after "
        f"{STORAGE_RETRY_AFTER_SECONDS} s (GET /healthz shows the free space)."),
        headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)})


def install(app: FastAPI) -> None:
    """Register the handlers that render every failure in ARM's envelope."""

    @app.exception_handler(ScalesetError)
    async def _domain(request: Request, exc: ScalesetError) -> JSONResponse:
        if caused_by_full_disk(exc):  # an image refused because its copy found no space
            return storage_full(request, exc.__cause__ or exc)
        headers = {"WWW-Authenticate": 'Bearer realm="scaleset"'} if exc.status == 401 else None
        return response(exc.status, exc.code, exc.message, target=exc.target,
                        details=exc.details, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid_body(list(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _model(request: Request, exc: ValidationError) -> JSONResponse:
        return invalid_body(list(exc.errors()))

    @app.exception_handler(ConflictError)
    async def _conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return response(409, "Conflict", f"{exc}; retry the request",
                        headers={"Retry-After": "1"})

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        if isinstance(exc, StorageFull) or caused_by_full_disk(exc):  # or what it wraps
            return storage_full(request, exc)
        if not access.keep_exception(request, exc):  # else the request's line carries it
            log.exception("store failure", exc_info=exc)
        if request.method in _READS:
            vitals_of(request.app).read_failed(str(exc))
        return response(503, "ServiceUnavailable", "the database did not answer; retry later",
                        headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "Error")
        message = str(exc.detail)
        if exc.status_code == 404:
            code, message = "NotFound", (
                f"No route matches {request.method} {request.url.path}; see /openapi.json")
        return response(exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if caused_by_full_disk(exc):
            return storage_full(request, exc)
        if not access.logged_here(request):  # the access line has its traceback already
            log.exception("unhandled error on %s %s", request.method, request.url.path,
                          exc_info=exc)
        return response(500, "InternalServerError",
                        "scaleset hit an unexpected error; the request may be retried")
