"""The Alembic migrations build exactly the schema ``store/tables.py`` declares.

On SQLite always, and on PostgreSQL when ``SCALESET_TEST_POSTGRES_URL`` is set
(in a schema of its own, so that downgrading to nothing does not pull the
tables from under other tests sharing the database).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from scaleset.store.database import alembic_config, make_engine, migrate
from scaleset.store.repository import Store
from scaleset.store.tables import metadata
from tests.conftest import POSTGRES_URL_ENV
from tests.support import World

TABLES = {t.name for t in metadata.sorted_tables}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database, not yet migrated."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path}/migrations.db")
        yield eng
        eng.dispose()
        return
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_URL_ENV} (make test sets it when a "
                    "server answers on 127.0.0.1:5432)")
    schema = f"migrations_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in url else "?"
    eng = make_engine(f"{url}{separator}options={quote(f'-csearch_path={schema}')}")
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def schema_diff(engine: Engine) -> list[Any]:
    """What autogenerate would write to turn the database into ``metadata``."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def columns(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's columns as the database reports them (types as SQL text)."""
    inspector = inspect(engine)
    return {t: [(c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(t)]
            for t in sorted(TABLES)}


def head(engine: Engine) -> str:
    heads = ScriptDirectory.from_config(alembic_config(engine)).get_heads()
    assert len(heads) == 1, f"the migrations have more than one head: {heads}"
    return heads[0]


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_migrating_an_empty_database_gives_exactly_the_models(engine: Engine) -> None:
    assert table_names(engine) == set()
    migrate(engine)
    assert table_names(engine) == TABLES | {"alembic_version"}
    assert current_revision(engine) == head(engine)
    assert schema_diff(engine) == []


def test_migrating_twice_changes_nothing(engine: Engine) -> None:
    migrate(engine)
    # Some data, which a second migrate must leave alone.
    store = Store(engine)
    world = World.create(store)
    sid = world.add_scale_set(capacity=2)
    world.publish("1.1.0")
    world.settle(sid)
    with store.transaction() as tx:
        before = (tx.get_scale_set(sid), tx.instances(sid), tx.past_runs(sid), tx.events(sid))
    columns_before = columns(engine)

    migrate(engine)

    assert current_revision(engine) == head(engine)
    assert schema_diff(engine) == []
    assert columns(engine) == columns_before
    with store.transaction() as tx:
        after = (tx.get_scale_set(sid), tx.instances(sid), tx.past_runs(sid), tx.events(sid))
    assert after == before
    assert len(before[2]) == 1 and before[2][0].status == "Completed"


def test_downgrade_to_base_and_upgrade_again(engine: Engine) -> None:
    migrate(engine)
    downgrade(engine, "base")
    assert table_names(engine) - {"alembic_version"} == set()
    assert current_revision(engine) is None

    migrate(engine)
    assert current_revision(engine) == head(engine)
    assert schema_diff(engine) == []
    # And the rebuilt schema works.
    store = Store(engine)
    world = World.create(store)
    sid = world.add_scale_set(capacity=2)
    world.clock.advance(timedelta(minutes=1))
    world.reconciler.reconcile(sid)
    with store.transaction() as tx:
        assert sorted(tx.instances(sid)) == ["0", "1"]


def test_a_url_with_percent_escapes_migrates(tmp_path: Path) -> None:
    """Alembic's config interpolates '%': a password with '@' (``p%40ss``) or a path
    with '%' must not break ``migrate``."""
    folder = tmp_path / "100%"
    folder.mkdir()
    engine = make_engine(f"sqlite:///{folder}/scaleset.db")
    assert "%25" in engine.url.render_as_string(hide_password=False)
    try:
        migrate(engine)
        assert schema_diff(engine) == []
    finally:
        engine.dispose()


def test_every_migration_steps_down_and_up_one_at_a_time(engine: Engine) -> None:
    """Walk the whole chain down one revision at a time, then up one at a time."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    chain = [rev.revision for rev in script.walk_revisions("base", "heads")]  # newest first
    migrate(engine)
    for revision in chain:
        assert current_revision(engine) == revision
        downgrade(engine, "-1")
    assert current_revision(engine) is None
    config = alembic_config(engine)
    for revision in reversed(chain):
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "+1")
        assert current_revision(engine) == revision
    assert schema_diff(engine) == []


def test_0009_keeps_every_stored_run_as_it_was(engine: Engine) -> None:
    """Runs stored before 0009 (a row per instance, Pending ones included) read the same after
    it, carry on from there, and step back down to a row per instance."""
    migrate(engine)
    store = Store(engine)
    world = World.create(store)
    sid = world.add_scale_set(capacity=5, policy={"maxBatchInstancePercent": 40,
                                                  "maxUnhealthyInstancePercent": 40})
    world.publish("1.1.0")
    run = world.start_upgrade(sid)
    world.reconciler.reconcile(sid)  # the first batch starts; the others stay Pending
    before = world.run(run.run_id)
    assert {ri.step.value for ri in before.instances.values()} >= {"Pending", "Upgrading"}
    downgrade(engine, "0008")  # the run now has a row per instance, Pending ones included
    with engine.connect() as conn:
        steps = [r[0] for r in conn.execute(text(
            "SELECT step FROM run_instances WHERE run_id = :r"), {"r": run.run_id})]
    assert len(steps) == 5 and "Pending" in steps
    migrate(engine)
    with engine.connect() as conn:
        pending_rows = conn.execute(text(
            "SELECT count(*) FROM run_instances WHERE step = 'Pending'")).scalar_one()
    assert pending_rows == 0
    assert world.run(run.run_id).instances == before.instances
    world.restart()
    world.settle(sid)
    after = world.run(run.run_id)
    assert after.status.value == "Completed"
    assert {ri.step.value for ri in after.instances.values()} == {"Succeeded"}
    with store.transaction() as tx:
        (summary,) = [s for s in tx.run_summaries(sid) if s.run.run_id == run.run_id]
    assert summary.progress.successful == 5 and summary.progress.pending == 0
    store.close()


def test_0010_fills_the_reference_columns_from_the_stored_models(engine: Engine) -> None:
    """Scale sets stored before 0010 are found by the new columns' queries after it."""
    migrate(engine)
    store = Store(engine)
    world = World.create(store)
    a = world.add_scale_set("a", capacity=3)
    b = world.add_scale_set("b", capacity=2)
    downgrade(engine, "0009")
    migrate(engine)
    with store.transaction() as tx:
        assert tx.total_capacity() == 5
        assert tx.total_capacity(excluding=a) == 2
        probe = tx.get_scale_set(a).model.health_probe_id  # type: ignore[union-attr]
        assert probe is not None
        lb = probe.lower().split("/probes/")[0]
        assert [r.id for r in tx.scale_sets_with_probe_under(lb + "/probes/")] == [a, b]
        assert [r.id for r in tx.scale_sets_under(a.rsplit("/", 1)[0] + "/")] == [a, b]
        assert tx.service_fabric_scale_sets() == []
    store.close()
