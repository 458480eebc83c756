"""Which subscriptions and locations this server has: ARM's subscription-level reads.

There is no subscription table: a subscription exists when it is the server's
default one (``DEFAULT_SUBSCRIPTION``, the one ``serve`` writes into the client
config) or when it holds a resource (a scale set, a load balancer, or any row
of the generic ``resources`` table; the server's own rows, such as service
principals, have no subscription and do not count). Locations likewise: the
CLI's default region plus every region a resource, an image version or a
gallery image version's replication uses, normalised (``West US`` is
``westus``).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select

from scaleset.catalog.gallery import normalise_region
from scaleset.store import tables as t
from scaleset.store.repository import Store

DEFAULT_SUBSCRIPTION: Final = "00000000-0000-0000-0000-000000000000"
DEFAULT_LOCATIONS: Final = ("westus",)
"""The region the CLI defaults to (``cli/image.py``), so a new server lists one location
(az picks a subscription location when a command needs one and none was given)."""


def subscriptions(store: Store) -> list[str]:
    """Every subscription id, the default one first, then in order (lower-cased)."""
    found: set[str] = set()
    with store.transaction() as tx:
        conn = tx.conn
        for scale_set_id in conn.execute(select(t.scale_sets.c.id)).scalars():
            parts = scale_set_id.split("/")
            if len(parts) > 2 and parts[1] == "subscriptions" and parts[2]:
                found.add(parts[2])
        for table in (t.load_balancers, t.resources):
            found.update(conn.execute(select(table.c.subscription).distinct()).scalars())
    found.discard("")
    found.discard(DEFAULT_SUBSCRIPTION)
    return [DEFAULT_SUBSCRIPTION, *sorted(s.lower() for s in found)]


def subscription_exists(store: Store, subscription: str) -> bool:
    """Whether ``subscription`` (any casing) is one ``subscriptions`` lists."""
    return subscription.lower() in subscriptions(store)


def locations(store: Store) -> list[str]:
    """Every region in use, normalised, in order (the default region included)."""
    found: set[str] = set(DEFAULT_LOCATIONS)
    with store.transaction() as tx:
        conn = tx.conn
        for table in (t.scale_sets, t.load_balancers, t.resources, t.image_versions):
            found.update(conn.execute(select(table.c.location).distinct()).scalars())
        # A gallery image version's target regions are regions too, replicated or not.
        for state in conn.execute(select(t.resources.c.state).where(
                t.resources.c.type == "microsoft.compute/galleries/images/versions")).scalars():
            entries = state.get("regions") if isinstance(state, dict) else None
            for entry in entries or []:
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    found.add(entry["name"])
    return sorted({normalise_region(name) for name in found if name and name.strip()})
