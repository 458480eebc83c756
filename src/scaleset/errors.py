"""Errors a user can see, each with its ARM error code and HTTP status.

::

    ScalesetError                  (base; code, status, target)
    ├── InvalidParameter           400  a field breaks a rule
    ├── NotFound                   404  ResourceNotFound / NotFound
    ├── OperationNotAllowed        409  the resource's state forbids it now
    ├── Conflict                   409  a concurrent change got there first
    ├── Unauthenticated            401  no or unknown bearer token
    ├── Forbidden                  403  the token's role may not do this
    └── PreconditionFailed         412  If-Match / If-None-Match did not hold

Messages name the field, the rule and the fix. The API renders these in
ARM's envelope; the CLI prints them.
"""

from __future__ import annotations


class ScalesetError(Exception):
    code = "InternalServerError"
    status = 500

    def __init__(self, message: str, *, target: str | None = None, code: str | None = None,
                 details: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.message = message
        self.target = target
        self.details = details
        """Further errors of the same request (``{code, target, message}``), e.g. every
        broken requirement when the message names the first."""
        if code is not None:
            self.code = code


class InvalidParameter(ScalesetError):
    code = "InvalidParameter"
    status = 400


class NotFound(ScalesetError):
    code = "ResourceNotFound"
    status = 404


class OperationNotAllowed(ScalesetError):
    code = "OperationNotAllowed"
    status = 409


class Conflict(ScalesetError):
    code = "Conflict"
    status = 409


class Unauthenticated(ScalesetError):
    code = "AuthenticationFailed"
    status = 401


class Forbidden(ScalesetError):
    code = "AuthorizationFailed"
    status = 403


class PreconditionFailed(ScalesetError):
    code = "PreconditionFailed"
    status = 412
