"""Shared fixtures: stores on SQLite (always) and PostgreSQL (when make test found one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from sqlalchemy import text

from scaleset.store.database import make_engine, migrate
from scaleset.store.repository import Store
from scaleset.store.tables import metadata

POSTGRES_URL_ENV = "SCALESET_TEST_POSTGRES_URL"


def worker_postgres_url(url: str) -> str:
    """``url`` with a schema of this test process's own (pytest-xdist runs several at once,
    and they share the one ``test`` database): created if missing."""
    schema = f"tests_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    admin = make_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        admin.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


def _reset_postgres(url: str) -> Store:
    engine = make_engine(worker_postgres_url(url))
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrate(engine)
    return Store(engine)


@pytest.fixture
def sqlite_store(tmp_path: object) -> Iterator[Store]:
    """A migrated SQLite store in a temporary file."""
    engine = make_engine(f"sqlite:///{tmp_path}/scaleset.db")
    migrate(engine)
    store = Store(engine)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Store]:
    """A migrated, empty store: SQLite, and PostgreSQL when one is configured."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path}/scaleset.db")
        migrate(engine)
        s = Store(engine)
    else:
        url = os.environ.get(POSTGRES_URL_ENV)
        if not url:
            pytest.skip(f"PostgreSQL tests need {POSTGRES_URL_ENV} (make test sets it when a "
                        "server answers on 127.0.0.1:5432)")
        s = _reset_postgres(url)
    yield s
    s.close()
