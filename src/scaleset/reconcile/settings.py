"""Settings of the shell, with a default on every field."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from scaleset.catalog.auto_upgrade import DEFAULT_IMAGES, PlatformImage
from scaleset.upgrade.state import DEFAULT_HEALTH_TIMEOUT
from scaleset.upgrade.timing import NO_DELAY, RolloutTiming


MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request or the whole server may hold; every field is a ``serve`` flag.

    Per-resource limits that ARM itself fixes (tags, extensions, data disks, probes,
    ``customData``, names) are constants next to the models, not settings.
    """

    max_instances_per_scale_set: int = 1000
    """``sku.capacity`` above this is refused (``--max-instances-per-scale-set``)."""
    max_instances_total: int = 10_000
    """The capacities of all scale sets together (``--max-instances-total``)."""
    max_request_bytes: int = 4 * MiB
    """A larger request body is refused with 413 before it is read in full."""
    max_requests_in_flight: int = 32
    """Beyond this many requests being served at once, 429 with Retry-After
    (``--max-requests-in-flight``). Admitted requests wait about this many times one
    request's service time: at 200 req/s offered on 2 cores (``bench/overload.py``) p99
    was 0.5 s at 32 (0.2 s at 16, 1.1 s at 64, 39 s without a bound)."""
    max_event_streams: int = 64
    """Server-Sent Events streams (``events?follow=true``) open at once; they are not
    requests in flight (each stays open), so they have their own bound
    (``--max-event-streams``); beyond it, 429 with Retry-After."""
    max_image_archive_bytes: int = 256 * MiB
    """An image archive (or fetched file) larger than this, as sent, is refused
    (``--max-image-archive-bytes``)."""
    max_image_expanded_bytes: int = 512 * MiB
    """An image archive expanding beyond this is refused while it is read
    (``--max-image-expanded-bytes``)."""
    max_image_files: int = 10_000
    """An image archive or directory with more entries is refused (``--max-image-files``)."""


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """Where image sources and extension files may come from."""

    roots: tuple[Path, ...] = ()
    """``properties.source.path`` must lie under one of these (``--image-source-root``,
    repeatable); none given: no server path may be read."""
    allow_private: bool = False
    """``source.uri`` and ``fileUris`` may reach loopback, link-local and private
    addresses (``--allow-private-sources``)."""


@dataclass(frozen=True, slots=True)
class ShellSettings:
    health_timeout: timedelta = DEFAULT_HEALTH_TIMEOUT
    """How long an upgraded instance has to become healthy (Azure: 5 minutes)."""

    update_domains: int = 5
    """Update domains instances are spread over (Azure's default for scale sets)."""

    fault_domains: int = 5
    """Fault domains when the model does not set ``platformFaultDomainCount``."""

    rollout_timing: RolloutTiming = NO_DELAY
    """Delays before automatic OS upgrade runs (``upgrade/timing.py``); default: none."""

    auto_upgrade_images: tuple[PlatformImage, ...] = DEFAULT_IMAGES
    """Platform images a scale set may upgrade automatically (the seed's table by default;
    ``serve --auto-upgrade-image`` adds, ``--auto-upgrade-images`` replaces)."""

    limits: Limits = field(default_factory=Limits)
    """Input and capacity limits (``Limits``)."""

    sources: SourcePolicy = field(default_factory=SourcePolicy)
    """Where image sources and extension files may be read from."""
