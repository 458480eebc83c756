"""The schema. Alembic migrations in ``store/migrations`` must produce exactly this
(``tests/integration/test_migrations.py`` compares them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python, naive UTC in the database (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    }
)

scale_sets = Table(
    "scale_sets",
    metadata,
    Column("id", String(512), primary_key=True),  # canonical ARM id, lower-cased
    Column("name", String(128), nullable=False),
    Column("location", String(64), nullable=False),
    Column("model", JSON, nullable=False),  # the ARM resource as last written
    Column("generation", Integer, nullable=False),
    Column("image_version", String(64)),  # the version new instances get (resolved latest)
    Column("next_instance_id", Integer, nullable=False),
    # Bumped by every transaction that writes the scale set's instances or runs;
    # the shell's writes are guarded on it (optimistic concurrency, and its cache key).
    Column("revision", Integer, nullable=False),
    Column("etag", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # When enableAutomaticOSUpgrade last turned on (None while off): the first
    # rollout's delay counts from here.
    Column("auto_os_upgrade_since", UTCDateTime()),
    # Creating | Updating while the latest PUT/PATCH (its operation id beside it) has not
    # been seen finished; None: nothing in progress. Stored so a GET reads one row.
    Column("provisioning_state", String(16)),
    Column("provisioning_operation", String(64)),
    # What questions about every scale set need, kept with the model so SQL can answer
    # them (migration 0010): the instances it asks for, the load balancer probe and image
    # id it names (lower-cased), whether it is a Service Fabric node type.
    Column("capacity", Integer, nullable=False, server_default="0"),
    Column("health_probe_id", String(1024), index=True),
    Column("image_id", String(1024), index=True),
    Column("service_fabric", Boolean, nullable=False, server_default=false()),
)

instances = Table(
    "instances",
    metadata,
    Column("scale_set_id", String(512), ForeignKey("scale_sets.id", ondelete="CASCADE"),
           primary_key=True),
    Column("instance_id", String(32), primary_key=True),
    Column("zone", String(16)),
    Column("fault_domain", Integer, nullable=False),
    Column("update_domain", Integer, nullable=False),
    Column("model_generation", Integer, nullable=False),
    Column("image_version", String(64)),
    Column("os_disk_id", String(256), nullable=False),
    Column("previous_os_disk_id", String(256)),
    Column("previous_image_version", String(64)),
    Column("previous_model_generation", Integer),
    Column("data_disks", JSON, nullable=False),
    Column("power_state", String(16), nullable=False),
    Column("provisioning_state", String(16), nullable=False),
    Column("health_state", String(16), nullable=False),
    Column("protect_from_scale_in", Boolean, nullable=False),
    Column("protect_from_scale_set_actions", Boolean, nullable=False),
    Column("private_ip", String(45)),  # IPv6 at its longest; None until the driver reports one
    Column("extension_statuses", JSON),  # per extension, as last observed; None: not observed
    # What the user asked of this one instance and the engine has not forgotten: the latest
    # power verb with its outcome, a reimageall run's data-disk reset. None: nothing.
    Column("user_intent", JSON),
)

image_versions = Table(
    "image_versions",
    metadata,
    Column("location", String(64), primary_key=True),
    Column("publisher", String(128), primary_key=True),
    Column("offer", String(128), primary_key=True),
    Column("sku", String(128), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("os_type", String(16), nullable=False),
    Column("properties", JSON, nullable=False),
    Column("published_at", UTCDateTime(), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("scale_set_id", String(512), ForeignKey("scale_sets.id", ondelete="CASCADE"),
           nullable=False),
    Column("kind", String(16), nullable=False),
    Column("started_by", String(16), nullable=False),
    Column("target_image_version", String(64)),
    Column("target_generation", Integer, nullable=False),
    Column("target_image_reference", JSON),
    Column("policy", JSON, nullable=False),
    Column("rollback_on_failure", Boolean, nullable=False),
    Column("rollback_on_breach", Boolean, nullable=False),
    Column("all_at_once", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", UTCDateTime(), nullable=False),
    Column("end_time", UTCDateTime()),
    Column("error_code", String(128)),
    Column("error_message", Text),
    Column("error_target", String(256)),
    Column("cancel_requested", Boolean, nullable=False),
    Column("cancel_time", UTCDateTime()),
    Column("next_batch_at", UTCDateTime()),
    # The instance ids the run covers (migration 0009): an instance without a
    # run_instances row is Pending (0009 converted the runs stored before it).
    Column("members", JSON),
    Column("member_count", Integer),
    Index(None, "scale_set_id", "start_time"),
)

run_batches = Table(
    "run_batches",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("batch_index", Integer, primary_key=True),
    Column("instance_ids", JSON, nullable=False),
    Column("start_time", UTCDateTime(), nullable=False),
    Column("end_time", UTCDateTime()),
)

run_instances = Table(
    "run_instances",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("instance_id", String(32), primary_key=True),
    Column("step", String(16), nullable=False),
    Column("batch_index", Integer),
    Column("health_deadline", UTCDateTime()),
    Column("reason", Text),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("scale_set_id", String(512), nullable=False),
    Column("run_id", String(64)),
    Column("kind", String(64), nullable=False),
    Column("instance_id", String(32)),
    Column("message", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Index(None, "scale_set_id", "id"),
    # Ids only grow (SQLite would reuse a deleted largest one): streams resume by id.
    sqlite_autoincrement=True,
)

load_balancers = Table(
    "load_balancers",
    metadata,
    Column("id", String(512), primary_key=True),  # canonical ARM id, lower-cased
    Column("subscription", String(128), nullable=False),  # lower-cased, for listing
    Column("resource_group", String(128), nullable=False),  # lower-cased, for listing
    Column("name", String(128), nullable=False),  # as the client spelled it
    Column("location", String(64), nullable=False),
    Column("body", JSON, nullable=False),  # the resource as GET returns it
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "subscription", "resource_group"),
)

# ARM resources that only need to be stored, listed and looked up by id or parent:
# galleries, gallery image definitions and versions, Service Fabric clusters.
resources = Table(
    "resources",
    metadata,
    Column("id", String(768), primary_key=True),  # canonical ARM id, lower-cased
    Column("type", String(128), nullable=False),  # e.g. microsoft.compute/galleries/images
    Column("parent_id", String(768)),  # lower-cased id of the parent resource, if any
    Column("subscription", String(128), nullable=False),  # lower-cased, for listing
    Column("resource_group", String(128), nullable=False),  # lower-cased, for listing
    Column("name", String(128), nullable=False),  # as the client spelled it
    Column("location", String(64), nullable=False),
    Column("body", JSON, nullable=False),  # the resource as GET returns it
    Column("state", JSON, nullable=False),  # server-owned facts never shown as written
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "type", "subscription", "resource_group"),
    Index(None, "parent_id"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 hex of the whole token
    Column("token_id", String(32), nullable=False, unique=True),  # shown to people, not secret
    Column("role", String(16), nullable=False),  # reader | contributor
    Column("description", String(256)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime()),  # None: never; refused from this instant on
)

# Named counters: "tokens" is bumped by every token create and revoke, so a server that
# keeps tokens' roles in memory sees another process's change at the next request.
revisions = Table(
    "revisions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("revision", Integer, nullable=False),
)

operations = Table(
    "operations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("location", String(64), nullable=False),
    Column("kind", String(64), nullable=False),  # what completes it, e.g. "osRollingUpgrade"
    Column("resource_id", String(512), nullable=False),
    Column("scale_set_id", String(512)),
    Column("run_id", String(64)),
    Column("status", String(16), nullable=False),  # InProgress | Succeeded | Failed | Canceled
    Column("start_time", UTCDateTime(), nullable=False),
    Column("end_time", UTCDateTime()),
    Column("error_code", String(128)),
    Column("error_message", Text),
    Column("data", JSON, nullable=False),
)
