"""Helpers shared by the routers: ids, api-version checks, etags, lookups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from fastapi import Query, Request

from scaleset.api import versions
from scaleset.errors import NotFound, PreconditionFailed
from scaleset.store.repository import WRITE_ATTEMPTS, DuplicateKey, ScaleSetRow, Store

T = TypeVar("T")

ACCEPTED: dict[int | str, dict[str, Any]] = {202: {
    "description": "Accepted: poll the Azure-AsyncOperation URL (or Location) until it ends",
    "headers": {"Azure-AsyncOperation": {"schema": {"type": "string"}},
                "Location": {"schema": {"type": "string"}},
                "Retry-After": {"schema": {"type": "integer"}}}}}

PROVIDER = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/" \
           "Microsoft.Compute"
SCALE_SET = PROVIDER + "/virtualMachineScaleSets/{name}"


async def compute_version(request: Request,
                          api_version: str | None = Query(default=None, alias="api-version")
                          ) -> str:
    """The api-version of a Compute request (400 in ARM's words when missing or unknown)."""
    # The usual case first: no request URL is built (only an error's message names it).
    if api_version is not None and api_version in _COMPUTE:
        return api_version
    return versions.check(api_version, versions.COMPUTE, provider="Microsoft.Compute",
                          path=request.url.path)


_COMPUTE: Final = frozenset(versions.COMPUTE)


async def gallery_version(request: Request,
                          api_version: str | None = Query(default=None, alias="api-version")
                          ) -> str:
    """The api-version of a gallery request (``Microsoft.Compute/galleries``), on the
    Gallery calendar."""
    return versions.check(api_version, versions.GALLERY, provider="Microsoft.Compute/galleries",
                          path=request.url.path)


async def operation_version(request: Request,
                            api_version: str | None = Query(default=None, alias="api-version")
                            ) -> str:
    """An operation's status is polled with the api-version of the request that started
    it: a Compute one, a Gallery one for gallery image versions, a Resources one for a
    resource group's delete."""
    accepted = tuple(sorted(set(versions.COMPUTE) | set(versions.GALLERY)
                            | set(versions.RESOURCES)))
    return versions.check(api_version, accepted, provider="Microsoft.Compute",
                          path=request.url.path)


async def network_version(request: Request,
                          api_version: str | None = Query(default=None, alias="api-version")
                          ) -> str:
    """The api-version of a ``Microsoft.Network`` request, checked against its own calendar."""
    return versions.check(api_version, versions.NETWORK, provider="Microsoft.Network",
                          path=request.url.path)


async def resources_version(api_version: str | None = Query(default=None, alias="api-version")
                            ) -> str:
    """The api-version of a ``Microsoft.Resources`` request (resource groups, resources)."""
    return versions.check(api_version, versions.RESOURCES, provider="Microsoft.Resources")


def scale_set_display_id(subscription: str, resource_group: str, name: str) -> str:
    return (f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
            f"Microsoft.Compute/virtualMachineScaleSets/{name}")


def scale_set_key(subscription: str, resource_group: str, name: str) -> str:
    """The store's key: the canonical id, lower-cased (ARM names are case-insensitive)."""
    return scale_set_display_id(subscription, resource_group, name).lower()


def load_scale_set(store: Store, subscription: str, resource_group: str, name: str
                   ) -> ScaleSetRow:
    with store.transaction() as tx:
        row = tx.get_scale_set(scale_set_key(subscription, resource_group, name))
    if row is None:
        raise scale_set_not_found(resource_group, name)
    return row


def scale_set_not_found(resource_group: str, name: str) -> NotFound:
    """ARM's 404 for a scale set that does not exist."""
    return NotFound(
        f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' under resource "
        f"group '{resource_group}' was not found.")


def check_preconditions(request: Request, etag: str | None) -> None:
    """Honour If-Match and If-None-Match (``*`` or an etag) with 412 when they fail."""
    if_match = request.headers.get("if-match")
    if if_match is not None and if_match.strip() != "*" and (
            etag is None or if_match.strip() != etag):
        raise PreconditionFailed(
            f"If-Match {if_match} does not match the resource's current etag "
            f"{etag or '(the resource does not exist)'}; GET it again and retry")
    if if_match is not None and if_match.strip() == "*" and etag is None:
        raise PreconditionFailed("If-Match: * needs an existing resource; it does not exist")
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and etag is not None and (
            if_none_match.strip() == "*" or if_none_match.strip() == etag):
        raise PreconditionFailed(
            "If-None-Match forbids overwriting the existing resource; use PATCH, or drop "
            "the header to replace it")


def retry_lost_race(write: Callable[[], T], attempts: int = WRITE_ATTEMPTS) -> T:
    """Run a create-or-replace ``write`` (one transaction); when its insert lost a race with
    an equal one (``DuplicateKey``), run it again: it then finds the winner's row and
    replaces it, or refuses by the request's preconditions (412), instead of a 409."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except DuplicateKey:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge: objects merge key by key, anything else (lists too) replaces.

    >>> deep_merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"c": 3}, "l": [2]})
    {'a': {'b': 1, 'c': 3}, 'l': [2]}
    """
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
