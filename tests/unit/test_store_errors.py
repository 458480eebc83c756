"""Database errors come out of the store classified: disk full, a lost insert race, busy."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from scaleset.errors import Conflict
from scaleset.store.database import open_store
from scaleset.store.repository import (
    ConflictError,
    DuplicateKey,
    StorageFull,
    StoreBusy,
    StoreError,
    classify,
)


class _PgError(Exception):
    """What psycopg raises: the SQLSTATE on ``sqlstate``."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _wrapped(kind: type[OperationalError] | type[IntegrityError], orig: Exception
             ) -> OperationalError | IntegrityError:
    return kind("INSERT ...", {}, orig)


def test_sqlite_full_postgres_disk_full_and_enospc_are_storage_full() -> None:
    for exc in (_wrapped(OperationalError, sqlite3.OperationalError("database or disk is full")),
                _wrapped(OperationalError, _PgError("could not extend file", "53100")),
                OSError(errno.ENOSPC, "No space left on device")):
        classified = classify(exc)
        assert isinstance(classified, StorageFull), exc
        assert isinstance(classified, StoreError)  # callers catching StoreError still do


def test_a_unique_violation_is_a_duplicate_key_conflict_not_an_outage() -> None:
    classified = classify(_wrapped(IntegrityError,
                                   sqlite3.IntegrityError("UNIQUE constraint failed: x.id")))
    assert isinstance(classified, DuplicateKey) and isinstance(classified, ConflictError)


def test_locks_and_serialization_failures_are_busy_and_the_rest_stays_store_error() -> None:
    assert isinstance(classify(_wrapped(
        OperationalError, sqlite3.OperationalError("database is locked"))), StoreBusy)
    assert isinstance(classify(_wrapped(
        OperationalError, _PgError("could not serialize access", "40001"))), StoreBusy)
    other = classify(_wrapped(OperationalError, sqlite3.OperationalError("no such table: x")))
    assert type(other) is StoreError and "no such table" in str(other)


def test_write_retries_its_work_after_a_lost_race_and_gives_up_bounded(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    calls: list[int] = []

    def loses_once(_tx: object) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise DuplicateKey("an equal insert won")
        return "done"

    assert store.write(loses_once) == "done" and len(calls) == 2

    def always_loses(_tx: object) -> str:
        calls.append(1)
        raise StoreBusy("locked")

    calls.clear()
    with pytest.raises(StoreBusy):
        store.write(always_loses, attempts=3)
    assert len(calls) == 3

    def refuses(_tx: object) -> str:  # a domain error is not retried
        calls.append(1)
        raise Conflict("no")

    calls.clear()
    with pytest.raises(Conflict):
        store.write(refuses)
    assert len(calls) == 1
    store.close()
