"""The in-memory token cache: what it may answer, and when it must read the row again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scaleset.security.tokens import ExpiringCache, Role, StoredToken, TokenCache

NOW = datetime(2026, 12, 7, tzinfo=UTC)


class Rows:
    """The token rows a transaction would read, counting the reads."""

    def __init__(self, row: StoredToken | None) -> None:
        self.row, self.reads = row, 0

    def load(self) -> StoredToken | None:
        self.reads += 1
        return self.row


def test_a_token_is_read_once_per_revision() -> None:
    cache, rows = TokenCache(), Rows(StoredToken("reader", None))
    assert cache.answer(3, "d", rows.load, now=NOW) == (Role.READER, False)
    assert cache.answer(3, "d", rows.load, now=NOW) == (Role.READER, False)
    assert rows.reads == 1
    rows.row = None  # revoked: the revision moved with it
    assert cache.answer(4, "d", rows.load, now=NOW) == (None, False)
    assert rows.reads == 2


def test_a_row_read_before_a_newer_revision_was_seen_is_not_kept() -> None:
    cache = TokenCache()
    before = Rows(StoredToken("contributor", None))
    after = Rows(None)
    # A request at revision 5 and one at 6 (after a revoke) interleave: the one at 6 empties
    # the cache first, then the one at 5 answers from its own read ...
    assert cache.answer(6, "d", after.load, now=NOW) == (None, False)
    assert cache.answer(5, "d", before.load, now=NOW) == (Role.CONTRIBUTOR, False)
    # ... and leaves nothing behind: the next request at 6 reads the row again.
    assert cache.answer(6, "d", after.load, now=NOW) == (None, False)
    assert after.reads == 2


def test_an_older_revision_neither_uses_nor_fills_the_cache() -> None:
    cache = TokenCache()
    current = Rows(StoredToken("reader", None))
    assert cache.answer(7, "d", current.load, now=NOW)[0] is Role.READER
    stale = Rows(StoredToken("contributor", None))
    assert cache.answer(6, "d", stale.load, now=NOW)[0] is Role.CONTRIBUTOR
    assert stale.reads == 1
    assert cache.answer(7, "d", current.load, now=NOW)[0] is Role.READER
    assert current.reads == 1


def test_a_kept_token_expires_at_its_instant_and_unknown_roles_admit_nobody() -> None:
    cache = TokenCache()
    rows = Rows(StoredToken("reader", NOW + timedelta(minutes=1)))
    assert cache.answer(1, "d", rows.load, now=NOW)[0] is Role.READER
    assert cache.answer(1, "d", rows.load, now=NOW + timedelta(minutes=1))[0] is None
    assert cache.answer(1, "x", Rows(StoredToken("owner", None)).load, now=NOW)[0] is None


def test_a_legacy_row_is_answered_but_not_kept_so_it_is_rekeyed() -> None:
    cache, rows = TokenCache(), Rows(StoredToken("reader", None, legacy=True))
    assert cache.answer(1, "d", rows.load, now=NOW) == (Role.READER, True)
    assert cache.answer(1, "d", rows.load, now=NOW) == (Role.READER, True)
    assert rows.reads == 2


def test_the_token_cache_is_bounded() -> None:
    cache = TokenCache(size=2)
    rows = {d: Rows(StoredToken("reader", None)) for d in "abc"}
    for d in "abc":
        cache.answer(1, d, rows[d].load, now=NOW)
    cache.answer(1, "a", rows["a"].load, now=NOW)  # the oldest went first
    assert rows["a"].reads == 2 and rows["c"].reads == 1


def test_an_expiring_cache_forgets_at_the_instant_and_beyond_its_size() -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(size=2)
    cache.put("a", 1, until=10.0)
    assert cache.get("a", at=9.9) == 1
    assert cache.get("a", at=10.0) is None
    cache.put("b", 2, until=20.0)
    cache.put("c", 3, until=20.0)
    cache.put("d", 4, until=20.0)
    assert cache.get("b", at=0.0) is None
    assert (cache.get("c", at=0.0), cache.get("d", at=0.0)) == (3, 4)
