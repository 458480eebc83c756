"""Bearer tokens in the store (SQLite, and PostgreSQL when configured): hashes only, roles,
revocation, and the bootstrap rules ``serve`` relies on."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from scaleset.clock import EPOCH
from scaleset.errors import Conflict, InvalidParameter
from scaleset.security.tokens import (
    IssuedToken,
    Role,
    create_token,
    ensure_bootstrap_token,
    hash_token,
    list_tokens,
    revoke_token,
    verify_token,
)
from scaleset.store import tables as t
from scaleset.store.repository import Store

NOW = EPOCH
TOKEN_SHAPE = re.compile(r"sst_(?P<id>[0-9a-f]{8})_(?P<secret>[A-Za-z0-9_-]{32,})")


def rows(store: Store) -> list[dict[str, object]]:
    with store.transaction() as tx:
        return [dict(r._mapping) for r in tx.conn.execute(select(t.tokens))]


def count(store: Store) -> int:
    with store.transaction() as tx:
        return int(tx.conn.execute(select(func.count()).select_from(t.tokens)).scalar_one())


def test_a_new_token_has_the_documented_shape_and_verifies_with_its_role(store: Store) -> None:
    issued = create_token(store, role=Role.READER, description="dashboards", now=NOW)

    match = TOKEN_SHAPE.fullmatch(issued.token)
    assert match is not None, issued.token
    assert match["id"] == issued.token_id
    assert issued.role is Role.READER
    assert verify_token(store, issued.token) is Role.READER


def test_the_store_keeps_only_the_hash_never_the_token_or_its_secret(store: Store) -> None:
    issued = [create_token(store, role=Role.CONTRIBUTOR, now=NOW),
              create_token(store, role="reader", description="chosen", now=NOW,
                           value="my-own-operator-token-123")]

    stored = rows(store)
    assert {r["token_hash"] for r in stored} == {
        hashlib.sha256(i.token.encode()).hexdigest() for i in issued}
    for token in issued:
        secret = token.token.rsplit("_", 1)[-1]
        for row in stored:
            for value in row.values():
                assert token.token not in str(value) and secret not in str(value)


def test_unknown_altered_and_empty_tokens_do_not_verify(store: Store) -> None:
    issued = create_token(store, role=Role.CONTRIBUTOR, now=NOW)

    assert verify_token(store, issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B")) \
        is None
    assert verify_token(store, issued.token + " ") is None
    assert verify_token(store, "sst_00000000_" + "x" * 43) is None
    assert verify_token(store, "") is None
    assert verify_token(store, hash_token(issued.token)) is None  # the hash is no password


@pytest.mark.parametrize(("have", "need", "allowed"), [
    (Role.READER, Role.READER, True),
    (Role.READER, Role.CONTRIBUTOR, False),
    (Role.CONTRIBUTOR, Role.READER, True),
    (Role.CONTRIBUTOR, Role.CONTRIBUTOR, True),
])
def test_a_contributor_may_do_what_a_reader_may_but_not_the_reverse(
        have: Role, need: Role, allowed: bool) -> None:
    assert have.allows(need) is allowed


def test_listing_shows_ids_roles_and_descriptions_but_no_secrets(store: Store) -> None:
    first = create_token(store, role=Role.CONTRIBUTOR, description="ci", now=NOW)
    second = create_token(store, role=Role.READER, now=NOW + timedelta(seconds=1))

    listed = list_tokens(store)

    assert [(i.token_id, i.role, i.description, i.created_at) for i in listed] == [
        (first.token_id, Role.CONTRIBUTOR, "ci", NOW),
        (second.token_id, Role.READER, None, NOW + timedelta(seconds=1))]
    assert first.token not in repr(listed) and hash_token(first.token) not in repr(listed)


def test_revoking_a_token_stops_it_and_only_it(store: Store) -> None:
    gone = create_token(store, role=Role.CONTRIBUTOR, now=NOW)
    kept = create_token(store, role=Role.READER, now=NOW)

    assert revoke_token(store, gone.token_id) is True
    assert verify_token(store, gone.token) is None
    assert verify_token(store, kept.token) is Role.READER
    assert revoke_token(store, gone.token_id) is False
    assert revoke_token(store, "nonexistent") is False


def test_a_chosen_value_is_stored_as_given_with_an_id_derived_from_its_hash(
        store: Store) -> None:
    issued = create_token(store, role=Role.CONTRIBUTOR, value="sst_e2e0test_chosen", now=NOW)

    assert issued.token == "sst_e2e0test_chosen"
    assert issued.token_id == hash_token("sst_e2e0test_chosen")[:8]
    assert verify_token(store, "sst_e2e0test_chosen") is Role.CONTRIBUTOR


def test_the_same_chosen_value_twice_is_a_conflict(store: Store) -> None:
    create_token(store, role=Role.READER, value="operator-chosen", now=NOW)

    with pytest.raises(Conflict, match="already exists"):
        create_token(store, role=Role.CONTRIBUTOR, value="operator-chosen", now=NOW)
    assert verify_token(store, "operator-chosen") is Role.READER  # not upgraded
    assert count(store) == 1


@pytest.mark.parametrize("value", ["", "has space", "tab\there", "line\nbreak", "nul\x00",
                                   "x" * 513])
def test_a_chosen_value_that_cannot_travel_in_a_header_is_refused(
        store: Store, value: str) -> None:
    with pytest.raises(InvalidParameter):
        create_token(store, role=Role.READER, value=value, now=NOW)
    assert count(store) == 0


def test_a_512_character_value_is_accepted(store: Store) -> None:
    create_token(store, role=Role.READER, value="v" * 512, now=NOW)

    assert verify_token(store, "v" * 512) is Role.READER


def test_an_unknown_role_or_an_overlong_description_is_refused(store: Store) -> None:
    with pytest.raises(InvalidParameter, match="Unknown role 'owner'"):
        create_token(store, role="owner", now=NOW)
    with pytest.raises(InvalidParameter, match="description"):
        create_token(store, role=Role.READER, description="d" * 257, now=NOW)
    assert count(store) == 0


def test_an_issued_token_hides_its_secret_from_repr(store: Store) -> None:
    issued = create_token(store, role=Role.READER, now=NOW)

    assert issued.token not in repr(issued) and issued.token_id in repr(issued)


# -- bootstrap -------------------------------------------------------------------

def test_an_empty_store_gets_one_random_contributor_token_once(store: Store) -> None:
    issued = ensure_bootstrap_token(store, env_value=None, now=NOW)

    assert isinstance(issued, IssuedToken) and TOKEN_SHAPE.fullmatch(issued.token)
    assert verify_token(store, issued.token) is Role.CONTRIBUTOR
    assert ensure_bootstrap_token(store, env_value=None, now=NOW) is None
    assert count(store) == 1


def test_an_empty_store_gets_the_environment_token(store: Store) -> None:
    issued = ensure_bootstrap_token(store, env_value="  bootstrap-from-env\n", now=NOW)

    assert issued is not None and issued.token == "bootstrap-from-env"
    assert issued.role is Role.CONTRIBUTOR
    assert verify_token(store, "bootstrap-from-env") is Role.CONTRIBUTOR
    assert ensure_bootstrap_token(store, env_value="bootstrap-from-env", now=NOW) is None
    assert count(store) == 1


def test_existing_tokens_suppress_a_random_bootstrap_token(store: Store) -> None:
    create_token(store, role=Role.READER, now=NOW)

    assert ensure_bootstrap_token(store, env_value=None, now=NOW) is None
    assert ensure_bootstrap_token(store, env_value="", now=NOW) is None
    assert count(store) == 1


def test_an_environment_token_not_yet_stored_is_added_silently_next_to_existing_ones(
        store: Store) -> None:
    create_token(store, role=Role.READER, now=NOW)

    assert ensure_bootstrap_token(store, env_value="added-later", now=NOW) is None

    assert verify_token(store, "added-later") is Role.CONTRIBUTOR
    assert count(store) == 2


def test_an_environment_token_already_stored_is_left_as_it_is(store: Store) -> None:
    create_token(store, role=Role.READER, value="known", now=NOW)

    assert ensure_bootstrap_token(store, env_value="known", now=NOW) is None

    assert verify_token(store, "known") is Role.READER
    assert count(store) == 1


def test_a_bad_environment_token_names_the_variable(store: Store) -> None:
    with pytest.raises(InvalidParameter) as raised:
        ensure_bootstrap_token(store, env_value="two words", now=NOW)

    assert raised.value.target == "SCALESET_BOOTSTRAP_TOKEN"
    assert count(store) == 0
