"""Fixtures for tests with real instances: a fleet per test, always torn down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scaleset.store.database import make_engine, migrate
from scaleset.store.repository import Store
from tests.process.fleet import Fleet


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    engine = make_engine(f"sqlite:///{tmp_path}/scaleset.db")
    migrate(engine)
    store = Store(engine)
    fleet = Fleet(tmp_path / "data", store)
    try:
        yield fleet
    finally:
        fleet.close()
        store.close()
