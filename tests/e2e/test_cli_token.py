"""``scaleset token ...`` as people run it: against a live server, and offline with --data-dir.

The group is invoked through ``python -c`` so the tests do not depend on how
the top-level ``scaleset`` command registers it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scaleset.security import secrets
from scaleset.security.tokens import Role, hash_token, verify_token
from scaleset.store.database import open_store
from tests.e2e.server import Server, running_server, trusting

RUN = "from scaleset.cli.token import app; app()"
SCALESET = str(Path(sys.executable).with_name("scaleset"))
TOKEN_SHAPE = re.compile(r"sst_(?P<id>[0-9a-f]{8})_[A-Za-z0-9_-]{32,}")
LIST = ("/subscriptions/s/providers/Microsoft.Compute/virtualMachineScaleSets"
        "?api-version=2026-04-01")


def token_cli(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
              ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCALESET_")}
    base.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}, **(env or {}))
    return subprocess.run([sys.executable, "-c", RUN, *map(str, args)], capture_output=True,
                          text=True, timeout=60, env=base, cwd=cwd)


def a_database(data_dir: Path) -> Path:
    """A server data directory with its (empty, migrated) database, as serve leaves it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    open_store(f"sqlite:///{data_dir / 'scaleset.db'}").close()
    return data_dir


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
    # The data directory's keyring, as serve opens it: token digests are keyed with it.
    store = open_store(f"sqlite:///{data_dir / 'scaleset.db'}",
                       cipher=secrets.load_keyring(data_dir, create=False))
    try:
        return verify_token(store, token)
    finally:
        store.close()


# -- against the running server ---------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("tokens")) as s:
        yield s


def online(server: Server, *args: str, token: str | None = None
           ) -> subprocess.CompletedProcess[str]:
    """The verbs with only the client config serve wrote (and a token from the environment)."""
    return token_cli(*args, env={"SCALESET_CONFIG": str(server.data_dir / "client-config.json"),
                                 "SCALESET_TOKEN": token or server.token})


def status_with(server: Server, token: str) -> int:
    response = httpx.get(server.endpoint + LIST, verify=trusting(server.ca), timeout=10,
                         headers={"Authorization": f"Bearer {token}"})
    return response.status_code


def test_create_list_revoke_go_through_the_server(server: Server) -> None:
    done = online(server, "create", "--role", "reader", "--name", "grafana", "--expires", "P1D")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    match = TOKEN_SHAPE.fullmatch(token)
    assert match is not None, done.stdout
    token_id = match["id"]
    assert token_id in done.stderr and "only time" in done.stderr and token not in done.stderr
    assert status_with(server, token) == 200

    shown = online(server, "list")
    assert shown.returncode == 0, shown.stderr
    items = {i["id"]: i for i in json.loads(shown.stdout)}
    assert items[token_id]["name"] == "grafana" and items[token_id]["role"] == "reader"
    assert items[token_id]["expiresAt"] is not None
    secret = token.split("_", 2)[2]
    assert secret not in shown.stdout + shown.stderr and hash_token(token) not in shown.stdout

    gone = online(server, "revoke", token_id)
    assert gone.returncode == 0, gone.stderr
    assert status_with(server, token) == 401
    again = online(server, "revoke", token_id)
    assert again.returncode == 1
    assert f"error (ResourceNotFound): No token has id '{token_id}'" in again.stderr


def test_a_token_whose_expiry_passed_gets_401(server: Server) -> None:
    import time

    done = online(server, "create", "--expires", "1")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    deadline = time.monotonic() + 10
    while status_with(server, token) == 200:  # the server's own clock decides
        assert time.monotonic() < deadline, "the token never expired"
        time.sleep(0.2)
    assert status_with(server, token) == 401


def test_a_reader_may_not_manage_tokens(server: Server) -> None:
    made = online(server, "create", "--role", "reader")
    assert made.returncode == 0, made.stderr
    denied = online(server, "create", "--role", "contributor", token=made.stdout.strip())
    assert denied.returncode == 1
    assert "error (AuthorizationFailed)" in denied.stderr and denied.stdout == ""


def test_a_bad_expiry_is_a_usage_error_before_any_request(server: Server) -> None:
    done = online(server, "create", "--expires", "next tuesday")
    assert done.returncode == 2
    assert "--expires" in done.stderr


def test_without_a_server_create_says_so_and_creates_no_database(tmp_path: Path) -> None:
    # SCALESET_DATA_DIR, exported for serve, must not turn the verb into the offline path.
    done = token_cli("create", "--server", "https://127.0.0.1:9", "--token", "t",
                     env={"SCALESET_DATA_DIR": str(tmp_path / "data"),
                          "HOME": str(tmp_path)}, cwd=tmp_path)
    assert done.returncode == 1
    assert "error (ConnectionFailed)" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no ./.scaleset, no data dir


# -- serve and the client config ----------------------------------------------------------

def test_restarting_serve_keeps_the_token_and_leaves_other_profiles_alone(
        tmp_path: Path) -> None:
    config = tmp_path / "client-config.json"  # where running_server points serve
    other = {"endpoint": "https://elsewhere.test:8443", "token": "sst_other_token"}
    config.write_text(json.dumps({"current": "elsewhere",
                                  "profiles": {"elsewhere": other}}))
    with running_server(tmp_path, bootstrap_token=None) as first:
        written = json.loads(config.read_text())
    port = int(first.endpoint.rsplit(":", 1)[1])
    with running_server(tmp_path, bootstrap_token=None, port=port) as second:
        rewritten = json.loads(config.read_text())
        env = {**os.environ, "SCALESET_CONFIG": str(config)}
        env.pop("SCALESET_TOKEN", None)
        ok = subprocess.run([SCALESET, "vmss", "list"], capture_output=True, text=True,
                            env=env, timeout=60)
    own = written["profiles"][written["current"]]
    assert own["endpoint"] == first.endpoint and own["token"] == first.token
    assert first.token and second.token == ""  # the database kept it: nothing new printed
    assert rewritten == written  # the token stayed, and so did the other server's profile
    assert rewritten["profiles"]["elsewhere"] == other
    assert ok.returncode == 0, ok.stderr


# -- offline: --data-dir, server stopped ----------------------------------------------------

def test_offline_create_prints_the_token_alone_on_stdout(tmp_path: Path) -> None:
    data_dir = a_database(tmp_path / "data")
    done = token_cli("create", "--role", "reader", "--description", "grafana",
                     "--data-dir", data_dir)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    match = TOKEN_SHAPE.fullmatch(token)
    assert match is not None, done.stdout
    assert match["id"] in done.stderr and token not in done.stderr
    assert role_of(data_dir, token) is Role.READER


def test_offline_refuses_a_directory_without_a_database_and_creates_nothing(
        tmp_path: Path) -> None:
    for verb in (("create",), ("list",), ("revoke", "abcd0123")):
        done = token_cli(*verb, "--data-dir", tmp_path / "missing")
        assert done.returncode == 1, verb
        assert "error (DatabaseNotFound)" in done.stderr
        assert not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    assert token_cli("create", "--data-dir", tmp_path / "empty").returncode == 1
    assert list((tmp_path / "empty").iterdir()) == []
    by_url = token_cli("create", "--database-url", f"sqlite:///{tmp_path / 'none.db'}")
    assert by_url.returncode == 1 and "error (DatabaseNotFound)" in by_url.stderr
    assert not (tmp_path / "none.db").exists()
    (tmp_path / "other.db").write_bytes(b"")  # some other (empty) SQLite file
    other = token_cli("list", "--database-url", f"sqlite:///{tmp_path / 'other.db'}")
    assert other.returncode == 1 and "error (DatabaseNotFound)" in other.stderr
    assert (tmp_path / "other.db").read_bytes() == b""


def test_offline_list_and_revoke(tmp_path: Path) -> None:
    data_dir = a_database(tmp_path)
    reader = create(data_dir, "--role", "reader", "--name", "grafana", "--expires",
                    "2030-01-01T00:00:00Z")
    contributor = create(data_dir, "--role", "CONTRIBUTOR")
    items = listed(data_dir)
    assert [(i["id"], i["role"], i["name"]) for i in items] == [
        (reader.split("_")[1], "reader", "grafana"),
        (contributor.split("_")[1], "contributor", None)]
    assert items[0]["expiresAt"] == "2030-01-01T00:00:00+00:00"
    as_table = token_cli("list", "--output", "table", "--data-dir", data_dir)
    for token in (reader, contributor):
        secret = token.split("_", 2)[2]
        assert secret not in as_table.stdout + as_table.stderr

    token_id = contributor.split("_")[1]
    assert token_cli("revoke", token_id, "--data-dir", data_dir).returncode == 0
    assert role_of(data_dir, contributor) is None
    again = token_cli("revoke", token_id, "--data-dir", data_dir)
    assert again.returncode == 1
    assert f"error (ResourceNotFound): No token has id '{token_id}'" in again.stderr


def test_a_bad_role_is_a_usage_error_that_lists_the_roles(tmp_path: Path) -> None:
    data_dir = a_database(tmp_path)
    done = token_cli("create", "--role", "admin", "--data-dir", data_dir)
    assert done.returncode == 2
    assert "--role" in done.stderr and "'reader'" in done.stderr \
        and "'contributor'" in done.stderr
    assert done.stdout == "" and listed(data_dir) == []
