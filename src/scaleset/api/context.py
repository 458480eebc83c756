"""What the routes need, handed to ``create_app`` once (no module globals)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request

from scaleset.clock import Clock
from scaleset.reconcile.settings import ShellSettings
from scaleset.security.tokens import ExpiringCache, TokenCache
from scaleset.store.repository import ImageVersionRow, Store
from scaleset.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from scaleset.artifacts import ArtifactStore
    from scaleset.security.authority import ServerIdentity


ACCESS_TOKENS_KEPT = 1024
"""Verified access tokens (JWTs) a server keeps, until each expires."""
SCALE_SET_BODIES_KEPT = 512
"""Rendered scale set GET answers a server keeps (the least recently read go first)."""


def _ignore(_: object) -> None:
    """No reconciler to wake (tests that only exercise the API)."""


def _room_everywhere(_: int) -> str | None:
    """A driver with no machine to fill (the simulated one): every instance fits."""
    return None


@dataclass
class ApiContext:
    store: Store
    clock: Clock
    settings: ShellSettings = field(default_factory=ShellSettings)
    notify: Callable[[str | None], None] = _ignore
    """Ring the reconciler's doorbell: something changed for this scale set (None: all)."""
    on_image_published: Callable[[ImageVersionRow], None] = _ignore
    """Tell the driver about a new image version (the simulated driver learns bad images)."""
    auth_required: bool = True
    page_size: int = 100
    artifacts: ArtifactStore | None = None
    """Where published image artifacts go; ``None``: sources are recorded, not copied."""
    console_log: Callable[[str, str], bytes | None] | None = None
    """(scale set id, instance id) -> the instance's serial console output."""
    instance_room: Callable[[int], str | None] = _room_everywhere
    """Whether the driver can hold this many more instances: None if so, else why not
    (the process driver counts free memory and pids); refused as a quota error."""
    metrics: Metrics = field(default_factory=Metrics)
    """This server's metrics (``GET /metrics``; its own registry, see ``telemetry``)."""
    metrics_token: str | None = field(default=None, repr=False)
    """A bearer token that may read ``/metrics`` and nothing else (``--metrics-token-file``)."""
    token_cache: TokenCache = field(default_factory=TokenCache, repr=False)
    """Opaque tokens' roles, valid for one revision of the tokens table (``api/auth.py``)."""
    access_tokens: ExpiringCache[tuple[str, str], dict[str, Any]] = field(
        default_factory=lambda: ExpiringCache(size=ACCESS_TOKENS_KEPT), repr=False)
    """(access token, audience) -> its verified claims, until it expires."""
    authority_identity: ServerIdentity | None = field(default=None, repr=False)
    """The authority's tenant and public key once stored (they never change after)."""
    scale_set_bodies: ExpiringCache[Hashable, bytes] = field(
        default_factory=lambda: ExpiringCache(size=SCALE_SET_BODIES_KEPT), repr=False)
    """A scale set's GET answer, rendered, by what it depends on (``routes/scalesets.py``)."""


def get_context(request: Request) -> ApiContext:
    """The app's context (sync: for direct calls; a sync dependency costs a thread hop)."""
    context = request.app.state.context
    assert isinstance(context, ApiContext)
    return context


async def request_context(request: Request) -> ApiContext:
    """The app's context as a dependency: async, so FastAPI runs it on the event loop."""
    return get_context(request)
