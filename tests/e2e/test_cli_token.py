"""``scaleset token ...`` as an operator runs it: a real process against a temporary data dir.

The group is invoked through ``python -c`` so the tests do not depend on how
the top-level ``scaleset`` command registers it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from scaleset.security.tokens import Role, hash_token, verify_token
from scaleset.store.database import open_store

RUN = "from scaleset.cli.token import app; app()"
TOKEN_SHAPE = re.compile(r"sst_(?P<id>[0-9a-f]{8})_[A-Za-z0-9_-]{32,}")


def token_cli(*args: str | Path, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("SCALESET_DATA_DIR", "SCALESET_DATABASE_URL")}
    base.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}, **(env or {}))
    return subprocess.run([sys.executable, "-c", RUN, *map(str, args)], capture_output=True,
                          text=True, timeout=60, env=base)


def create(data_dir: Path, *extra: str) -> str:
    done = token_cli("create", "--data-dir", data_dir, *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def listed(data_dir: Path) -> list[dict[str, str]]:
    done = token_cli("list", "--data-dir", data_dir)
    assert done.returncode == 0, done.stderr
    items: list[dict[str, str]] = json.loads(done.stdout)
    return items


def role_of(data_dir: Path, token: str) -> Role | None:
    store = open_store(f"sqlite:///{data_dir / 'scaleset.db'}")
    try:
        return verify_token(store, token)
    finally:
        store.close()


def test_create_prints_the_token_alone_on_stdout_and_the_hint_on_stderr(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # not there yet: create makes it
    done = token_cli("create", "--role", "reader", "--description", "grafana",
                     "--data-dir", data_dir)

    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    match = TOKEN_SHAPE.fullmatch(token)
    assert match is not None, done.stdout
    assert match["id"] in done.stderr and "only time" in done.stderr
    assert token not in done.stderr
    assert role_of(data_dir, token) is Role.READER


def test_list_shows_ids_roles_and_descriptions_but_no_secrets(tmp_path: Path) -> None:
    reader = create(tmp_path, "--role", "reader", "--description", "grafana")
    contributor = create(tmp_path, "--role", "CONTRIBUTOR")

    as_json = token_cli("list", "--data-dir", tmp_path)
    as_table = token_cli("list", "--output", "table", "--data-dir", tmp_path)

    assert as_json.returncode == 0 and as_table.returncode == 0, as_json.stderr + as_table.stderr
    items = json.loads(as_json.stdout)
    assert [(i["tokenId"], i["role"], i["description"]) for i in items] == [
        (reader.split("_")[1], "reader", "grafana"),
        (contributor.split("_")[1], "contributor", None)]
    assert all(i.keys() == {"tokenId", "role", "description", "createdAt"} for i in items)
    assert reader.split("_")[1] in as_table.stdout and "grafana" in as_table.stdout
    for token in (reader, contributor):
        secret = token.split("_", 2)[2]
        for text in (as_json.stdout, as_json.stderr, as_table.stdout, as_table.stderr):
            assert secret not in text and hash_token(token) not in text


def test_revoke_stops_a_token_and_a_second_revoke_says_there_is_none(tmp_path: Path) -> None:
    token = create(tmp_path, "--role", "contributor")
    token_id = token.split("_")[1]

    done = token_cli("revoke", token_id, "--data-dir", tmp_path)
    again = token_cli("revoke", token_id, "--data-dir", tmp_path)

    assert done.returncode == 0, done.stderr
    assert listed(tmp_path) == []
    assert role_of(tmp_path, token) is None
    assert again.returncode == 1
    assert f"error (ResourceNotFound): No token has id '{token_id}'" in again.stderr


def test_a_bad_role_is_a_usage_error_that_lists_the_roles(tmp_path: Path) -> None:
    done = token_cli("create", "--role", "admin", "--data-dir", tmp_path)

    assert done.returncode == 2
    assert "--role" in done.stderr and "'reader'" in done.stderr \
        and "'contributor'" in done.stderr
    assert done.stdout == "" and not (tmp_path / "scaleset.db").exists()


def test_the_environment_chooses_the_database(tmp_path: Path) -> None:
    by_dir = token_cli("create", "--role", "reader", env={"SCALESET_DATA_DIR": str(tmp_path / "a")})
    url = f"sqlite:///{tmp_path / 'b.db'}"
    by_url = token_cli("create", "--role", "contributor", env={"SCALESET_DATABASE_URL": url})
    assert by_dir.returncode == 0 and by_url.returncode == 0, by_dir.stderr + by_url.stderr
    token, other = by_dir.stdout.strip(), by_url.stdout.strip()

    assert role_of(tmp_path / "a", token) is Role.READER
    store = open_store(url)
    try:
        assert verify_token(store, other) is Role.CONTRIBUTOR
        assert verify_token(store, token) is None
    finally:
        store.close()


def test_list_without_a_database_fails_and_creates_nothing(tmp_path: Path) -> None:
    done = token_cli("list", "--data-dir", tmp_path / "missing")

    assert done.returncode == 1
    assert "no database at" in done.stderr
    assert not (tmp_path / "missing").exists()
