"""The settings of ``scaleset serve``: one frozen object, a default on every field."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from scaleset.catalog.auto_upgrade import DEFAULT_IMAGES, PlatformImage
from scaleset.reconcile.settings import Limits, SourcePolicy
from scaleset.upgrade.state import DEFAULT_HEALTH_TIMEOUT
from scaleset.upgrade.timing import NO_DELAY, RolloutTiming

DEFAULT_PORT = 8443


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    """Listen address: loopback unless told otherwise."""
    port: int = DEFAULT_PORT
    data_dir: Path = Path(".scaleset")
    """Database, TLS material and the client config live here."""
    database_url: str | None = None
    """Default: SQLite at <data-dir>/scaleset.db."""
    driver: str = "process"
    """process: real local processes; simulated: an in-memory fleet on a fast timeline."""
    health_timeout: timedelta = DEFAULT_HEALTH_TIMEOUT
    tls_cert: Path | None = None
    tls_key: Path | None = None
    """Your own certificate and key; default: generated under <data-dir>/tls."""
    insecure_http: bool = False
    bootstrap_token: str | None = field(default=None, repr=False)
    """SCALESET_BOOTSTRAP_TOKEN: the first contributor token (never logged)."""
    resync: timedelta = timedelta(seconds=1)
    """The reconcile loop looks at every scale set at least this often."""
    rollout_timing: RolloutTiming = NO_DELAY
    """Delays of automatic OS upgrade runs (``--rollout-timing`` preset, then the
    ``--first-rollout-delay``/``--rollout-delay``/``--rollout-jitter`` flags); default none."""
    replication_delay: timedelta = timedelta(seconds=2)
    """Simulated driver: how long a gallery image version takes to replicate to a region
    (the process driver really copies the artifact instead)."""
    auto_upgrade_images: tuple[PlatformImage, ...] = DEFAULT_IMAGES
    """Platform images that may have automatic OS upgrade (the seed's table by default)."""
    instance_dir: Path | None = None
    """Process driver: where instance trees live (``--instance-dir``); default
    ``<data-dir>/instances``, or, as root, ``/var/lib/scaleset/instances/<digest>``
    linked from there (``server/instance_dir.py``)."""
    limits: Limits = field(default_factory=Limits)
    """Input and capacity limits: instances, request size and rate, image archives."""
    sources: SourcePolicy = field(default_factory=SourcePolicy)
    """Server paths and private addresses image sources and extension files may use."""
    log_format: str = "text"
    """``text`` (one readable line per record) or ``json`` (one JSON object per line)."""
    log_level: str = "info"
    """scaleset's own loggers; uvicorn and libraries log warnings and errors only."""
    metrics_token: str | None = field(default=None, repr=False)
    """A bearer token that may read ``/metrics`` and nothing else (``--metrics-token-file``;
    never logged)."""

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'scaleset.db').resolve()}"

    @property
    def scheme(self) -> str:
        return "http" if self.insecure_http else "https"
