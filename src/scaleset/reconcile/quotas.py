"""How many instances a scale set, the server and the driver's machine may hold.

Three checks, in the order a user meets them:

1. ``check_capacity``: ``sku.capacity`` is an integer from 0 to
   ``Limits.max_instances_per_scale_set`` (400 ``InvalidParameter``, Azure's wording);
2. ``check_room``: when the capacity grows, the driver must have room for the growth
   (``ApiContext.instance_room``; 409 ``OperationNotAllowed``);
3. ``enforce_total``: the capacities of all scale sets together stay within
   ``Limits.max_instances_total``, counted in the transaction that writes (409
   ``OperationNotAllowed``, worded like Azure's quota errors).

A check only refuses growth: a scale set already over a limit lowered since may still be
changed in other ways and scaled in.
"""

from __future__ import annotations

from collections.abc import Callable

from scaleset.errors import InvalidParameter, OperationNotAllowed
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile.settings import Limits
from scaleset.store.repository import Tx

TARGET = "sku.capacity"


def check_capacity(capacity: object, limits: Limits) -> int:
    """``capacity`` as an int within 0..``max_instances_per_scale_set``; else 400."""
    top = limits.max_instances_per_scale_set
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 <= capacity <= top:
        shown = str(capacity) if not isinstance(capacity, int) or abs(capacity) < 10**30 \
            else f"{str(capacity)[:30]}…"
        raise InvalidParameter(
            f"The value {shown} of parameter '{TARGET}' is out of range. The value must be "
            f"between 0 and {top}, inclusive. (The server's limit per scale set is set by "
            "'scaleset serve --max-instances-per-scale-set'.)", target=TARGET)
    return capacity


def growth(model: ScaleSet, previous: ScaleSet | None) -> int:
    """How many instances more ``model`` asks for than ``previous`` (0 when not more)."""
    before = previous.capacity if previous is not None else 0
    return max(0, model.capacity - before)


def check_room(model: ScaleSet, previous: ScaleSet | None, limits: Limits,
               room: Callable[[int], str | None]) -> None:
    """The per-set range, then whether the driver can hold the growth (409 if not)."""
    check_capacity(model.capacity, limits)
    more = growth(model, previous)
    if more == 0:
        return
    reason = room(more)
    if reason is not None:
        raise OperationNotAllowed(
            f"Operation could not be completed as it results in exceeding the capacity of "
            f"this server's machine: {more} more instance(s) asked for ({TARGET} "
            f"{model.capacity}); {reason}. Lower {TARGET}, or free memory or processes on "
            "the server.", target=TARGET)


def enforce_total(tx: Tx, model: ScaleSet, *, scale_set_id: str, limits: Limits,
                  previous: ScaleSet | None = None) -> None:
    """Refuse a create or update whose growth takes the server over its total (409)."""
    check_capacity(model.capacity, limits)
    more = growth(model, previous)
    if more == 0:
        return
    usage = tx.total_capacity(excluding=scale_set_id)
    usage += previous.capacity if previous is not None else 0
    limit = limits.max_instances_total
    if usage + more > limit:
        raise OperationNotAllowed(
            "Operation could not be completed as it results in exceeding the server's "
            f"instance quota. Additional details - Current Limit: {limit}, Current Usage: "
            f"{usage}, Additional Required: {more}, (Minimum) New Limit Required: "
            f"{usage + more}. Raise the limit with 'scaleset serve --max-instances-total "
            f"{usage + more}', or lower {TARGET} here or on other scale sets.", target=TARGET)
