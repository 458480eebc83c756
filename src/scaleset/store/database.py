"""Opening a database: engine settings per backend, and migrations to the latest schema.

``open_store("sqlite:///path/scaleset.db")`` is the embedded default;
``postgresql+psycopg://...`` works the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from scaleset.store.repository import Store
from scaleset.store.sealing import FieldCipher

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets readers (the API) run while the reconciler writes; NORMAL is still
    # durable across process crashes, which is the failure the shell plans for.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Start a write transaction (``Store.transaction(write=True)``) with BEGIN IMMEDIATE.

    pysqlite begins a transaction only before the first INSERT/UPDATE/DELETE, as
    DEFERRED: a transaction that read first holds a snapshot, and if another writer
    commits before its write, SQLite fails it with SQLITE_BUSY_SNAPSHOT, which
    busy_timeout does not wait out. BEGIN IMMEDIATE takes the write lock up front,
    waiting up to busy_timeout for it, so a read-check-write is serialised instead.
    Other transactions keep pysqlite's behaviour (reads do not block on writers).
    """
    if conn.get_execution_options().get("scaleset_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings scaleset relies on."""
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            poolclass=StaticPool if memory else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Config values go through configparser interpolation: a percent-encoded URL
    # (a password with '@', a query option, a path with '%') needs '%' doubled.
    url = engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is there already)."""
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def open_store(url: str, *, cipher: FieldCipher | None = None) -> Store:
    """Open (and migrate) the database at ``url``; ``cipher`` seals secrets at rest."""
    engine = make_engine(url)
    migrate(engine)
    return Store(engine, cipher)
