"""``scaleset serve``: the control plane in one process (API, reconcile loop, driver)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from scaleset.catalog import auto_upgrade
from scaleset.cli import connection
from scaleset.catalog.auto_upgrade import PlatformImage
from scaleset.model.durations import parse_duration
from scaleset.reconcile.settings import Limits, SourcePolicy
from scaleset.server.settings import DEFAULT_PORT, ServeSettings
from scaleset.telemetry import logs
from scaleset.upgrade import timing

_LIMITS = Limits()  # the defaults the flags show


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(envvar="SCALESET_HOST", help="Listen address.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SCALESET_PORT", min=0, max=65535)] = DEFAULT_PORT,
    data_dir: Annotated[Path, typer.Option(envvar="SCALESET_DATA_DIR",
                                           help="Database, TLS files, client config.")]
    = Path(".scaleset"),
    database_url: Annotated[str | None, typer.Option(
        envvar="SCALESET_DATABASE_URL", help="Default: SQLite in the data directory.")] = None,
    driver: Annotated[str, typer.Option(
        envvar="SCALESET_DRIVER",
        help="process: instances are local processes; simulated: an in-memory fleet.")]
    = "process",
    health_timeout: Annotated[str, typer.Option(
        envvar="SCALESET_HEALTH_TIMEOUT",
        help="How long an upgraded instance has to become healthy: seconds or ISO 8601.")]
    = "PT5M",
    tls_cert: Annotated[Path | None, typer.Option(envvar="SCALESET_TLS_CERT")] = None,
    tls_key: Annotated[Path | None, typer.Option(envvar="SCALESET_TLS_KEY")] = None,
    insecure_http: Annotated[bool, typer.Option(
        "--insecure-http", envvar="SCALESET_INSECURE_HTTP", help="Plain HTTP (no TLS).")]
    = False,
    rollout_timing: Annotated[str, typer.Option(
        envvar="SCALESET_ROLLOUT_TIMING",
        help="Delays of automatic OS upgrades: 'immediate' (no delay) or 'azure' (first "
             "rollout 3 h after configuration, later ones 30-60 min after publish); the "
             "three flags below override it.")] = timing.DEFAULT_PRESET,
    first_rollout_delay: Annotated[str | None, typer.Option(
        envvar="SCALESET_FIRST_ROLLOUT_DELAY",
        help="A scale set's first automatic rollout waits this long after automatic OS "
             "upgrade is turned on: seconds or ISO 8601.")] = None,
    rollout_delay: Annotated[str | None, typer.Option(
        envvar="SCALESET_ROLLOUT_DELAY",
        help="An automatic rollout waits this long after its version is available: seconds "
             "or ISO 8601.")] = None,
    rollout_jitter: Annotated[str | None, typer.Option(
        envvar="SCALESET_ROLLOUT_JITTER",
        help="Plus up to this much, fixed per scale set and version: seconds or ISO 8601.")]
    = None,
    replication_delay: Annotated[str, typer.Option(
        envvar="SCALESET_REPLICATION_DELAY",
        help="Simulated driver: how long a gallery image version takes to replicate to a "
             "region, seconds or ISO 8601 (the process driver really copies).")] = "2",
    auto_upgrade_image: Annotated[list[str] | None, typer.Option(
        "--auto-upgrade-image", envvar="SCALESET_AUTO_UPGRADE_IMAGE",
        metavar="PUBLISHER:OFFER:SKU",
        help="A platform image that may have automatic OS upgrade, added to the list "
             "(repeatable; the variable takes several separated by spaces).")] = None,
    auto_upgrade_images: Annotated[Path | None, typer.Option(
        "--auto-upgrade-images", envvar="SCALESET_AUTO_UPGRADE_IMAGES", metavar="FILE",
        help='A JSON list of {"publisher", "offer", "sku"} that replaces the default list of '
             "images with automatic OS upgrade (Azure's supported images).")] = None,
    instance_dir: Annotated[Path | None, typer.Option(
        envvar="SCALESET_INSTANCE_DIR", metavar="DIR",
        help="Process driver: where instances' disks live. Default: <data-dir>/instances; "
             "as root /var/lib/scaleset/instances/<digest>, linked from there, so the "
             "data directory stays private.")] = None,
    max_instances_per_scale_set: Annotated[int, typer.Option(
        envvar="SCALESET_MAX_INSTANCES_PER_SCALE_SET", min=0,
        help="The largest sku.capacity a scale set may ask for.")]
    = _LIMITS.max_instances_per_scale_set,
    max_instances_total: Annotated[int, typer.Option(
        envvar="SCALESET_MAX_INSTANCES_TOTAL", min=0,
        help="The capacities of all scale sets on this server together.")]
    = _LIMITS.max_instances_total,
    max_requests_in_flight: Annotated[int, typer.Option(
        envvar="SCALESET_MAX_REQUESTS_IN_FLIGHT", min=1,
        help="Requests served at once; more get 429 with Retry-After.")]
    = _LIMITS.max_requests_in_flight,
    max_event_streams: Annotated[int, typer.Option(
        envvar="SCALESET_MAX_EVENT_STREAMS", min=1,
        help="Event streams (events?follow=true) open at once; more get 429.")]
    = _LIMITS.max_event_streams,
    max_image_archive_bytes: Annotated[int, typer.Option(
        envvar="SCALESET_MAX_IMAGE_ARCHIVE_BYTES", min=1,
        help="The largest image archive or downloaded file, in bytes as sent.")]
    = _LIMITS.max_image_archive_bytes,
    max_image_expanded_bytes: Annotated[int, typer.Option(
        envvar="SCALESET_MAX_IMAGE_EXPANDED_BYTES", min=1,
        help="The most bytes an image may hold once unpacked.")]
    = _LIMITS.max_image_expanded_bytes,
    max_image_files: Annotated[int, typer.Option(
        envvar="SCALESET_MAX_IMAGE_FILES", min=1,
        help="The most files and directories an image may hold.")]
    = _LIMITS.max_image_files,
    image_source_root: Annotated[list[Path] | None, typer.Option(
        "--image-source-root", envvar="SCALESET_IMAGE_SOURCE_ROOT", metavar="DIR",
        help="properties.source.path may name files under DIR (repeatable); without it "
             "no server path can be published.")] = None,
    allow_private_sources: Annotated[bool, typer.Option(
        "--allow-private-sources", envvar="SCALESET_ALLOW_PRIVATE_SOURCES",
        help="Let source.uri and extension fileUris reach loopback, link-local and "
             "private addresses.")] = False,
    log_format: Annotated[str, typer.Option(
        envvar="SCALESET_LOG_FORMAT", metavar="text|json",
        help="Logs on stderr: readable lines, or one JSON object per line (time, level, "
             "logger, message and the record's fields).")] = "text",
    log_level: Annotated[str, typer.Option(
        envvar="SCALESET_LOG_LEVEL", metavar="debug|info|warning|error",
        help="scaleset's own log level (debug adds every request answered).")] = "info",
    metrics_token_file: Annotated[Path | None, typer.Option(
        envvar="SCALESET_METRICS_TOKEN_FILE", metavar="FILE",
        help="A file holding a bearer token that may read /metrics and nothing else (for "
             "a Prometheus scraper); without it /metrics needs a reader token.")] = None,
) -> None:
    """Run the API, the reconcile loop and the driver until interrupted.

    Once listening it adds or updates its own profile in the client config (the one
    naming its URL, or --profile NAME) and makes it current; other profiles stay.
    """
    import os

    from scaleset.cli import clientconfig
    from scaleset.server.main import DEFAULT_SUBSCRIPTION
    from scaleset.server.main import serve as run  # heavy imports only for this verb

    try:
        timeout = parse_duration(float(health_timeout) if _is_number(health_timeout)
                                 else health_timeout)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--health-timeout") from exc
    try:
        replication = parse_duration(float(replication_delay) if _is_number(replication_delay)
                                     else replication_delay)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--replication-delay") from exc
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("give both --tls-cert and --tls-key, or neither")
    rollout = rollout_settings(rollout_timing, first_rollout_delay, rollout_delay,
                               rollout_jitter)
    images = allow_list(auto_upgrade_image or [], auto_upgrade_images)
    for value, choices, flag in ((log_format, logs.FORMATS, "--log-format"),
                                 (log_level, tuple(logs.LEVELS), "--log-level")):
        if value not in choices:
            raise typer.BadParameter(f"'{value}' is not one of {', '.join(choices)}",
                                     param_hint=flag)
    settings = ServeSettings(
        host=host, port=port, data_dir=data_dir, database_url=database_url, driver=driver,
        health_timeout=timeout, tls_cert=tls_cert, tls_key=tls_key, insecure_http=insecure_http,
        bootstrap_token=os.environ.get("SCALESET_BOOTSTRAP_TOKEN") or None,
        rollout_timing=rollout,
        replication_delay=replication,
        auto_upgrade_images=images,
        instance_dir=instance_dir,
        limits=Limits(max_instances_per_scale_set=max_instances_per_scale_set,
                      max_instances_total=max_instances_total,
                      max_requests_in_flight=max_requests_in_flight,
                      max_event_streams=max_event_streams,
                      max_image_archive_bytes=max_image_archive_bytes,
                      max_image_expanded_bytes=max_image_expanded_bytes,
                      max_image_files=max_image_files),
        sources=SourcePolicy(roots=tuple(p.resolve() for p in image_source_root or ()),
                             allow_private=allow_private_sources),
        log_format=log_format, log_level=log_level,
        metrics_token=read_metrics_token(metrics_token_file) if metrics_token_file else None,
    )
    profile = connection.flags(ctx).profile

    def write_config(endpoint: str, ca_file: Path | None, token: str | None) -> None:
        path = clientconfig.default_config_path()
        try:
            # token None (a restart: no new token) keeps the profile's token.
            clientconfig.write_client_config(path, endpoint=endpoint, ca_file=ca_file,
                                             subscription=DEFAULT_SUBSCRIPTION, token=token,
                                             profile=profile)
        except OSError as exc:  # a read-only home must not stop the server
            typer.echo(f"could not write the client config {path}: {exc}", err=True)
        except clientconfig.ClientConfigError as exc:  # never overwrite a file we cannot read
            typer.echo(f"left the client config {path} alone: {exc.message}", err=True)
        else:
            typer.echo(f"Client config: {path}")

    run(settings, on_ready=write_config)


METRICS_TOKEN_MIN = 16
METRICS_TOKEN_MAX = 512


def read_metrics_token(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace ignored): 16 to 512 visible ASCII
    characters, as an ``Authorization`` header carries them."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(METRICS_TOKEN_MAX + 64)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}",
                                 param_hint="--metrics-token-file") from exc
    token = raw.decode("ascii", errors="replace").strip()
    if not METRICS_TOKEN_MIN <= len(token) <= METRICS_TOKEN_MAX or not all(
            "!" <= c <= "~" for c in token):
        raise typer.BadParameter(
            f"{path} must hold one token of {METRICS_TOKEN_MIN} to {METRICS_TOKEN_MAX} "
            "visible ASCII characters, without spaces (e.g. from 'openssl rand -hex 32')",
            param_hint="--metrics-token-file")
    return token


def allow_list(added: list[str], file: Path | None) -> tuple[PlatformImage, ...]:
    """The images with automatic OS upgrade: the file's list (else Azure's), plus ``added``.

    >>> [str(i) for i in allow_list(["Contoso:WebApp:demo"], None)][-1]
    'Contoso/WebApp/demo'
    """
    base = auto_upgrade.DEFAULT_IMAGES
    if file is not None:
        try:
            base = auto_upgrade.parse_json(file.read_text())
        except (OSError, auto_upgrade.AllowListError) as exc:
            raise typer.BadParameter(f"{file}: {exc}",
                                     param_hint="--auto-upgrade-images") from exc
    try:
        extra = [auto_upgrade.parse_urn(text) for text in added]
    except auto_upgrade.AllowListError as exc:
        raise typer.BadParameter(str(exc), param_hint="--auto-upgrade-image") from exc
    return auto_upgrade.merged(base, extra)


def rollout_settings(preset: str, first: str | None, delay: str | None, jitter: str | None
                     ) -> timing.RolloutTiming:
    """The rollout timing of ``--rollout-timing`` with the explicit flags laid over it.

    >>> rollout_settings("azure", None, "PT10M", None).rollout_delay
    datetime.timedelta(seconds=600)
    >>> rollout_settings("azure", None, "PT10M", None).first_rollout_delay
    datetime.timedelta(seconds=10800)
    """
    base = timing.PRESETS.get(preset.strip().lower())
    if base is None:
        raise typer.BadParameter(
            f"'{preset}' is not a rollout timing preset; use one of "
            f"{', '.join(timing.PRESETS)}", param_hint="--rollout-timing")
    changes: dict[str, timedelta] = {}
    for name, text in (("first_rollout_delay", first), ("rollout_delay", delay),
                       ("rollout_jitter", jitter)):
        if text is not None:
            flag = "--" + name.replace("_", "-")
            try:
                changes[name] = parse_duration(float(text) if _is_number(text) else text)
            except ValueError as exc:
                raise typer.BadParameter(f"{exc} (e.g. '1800' or 'PT30M')",
                                         param_hint=flag) from exc
    return dataclasses.replace(base, **changes)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
