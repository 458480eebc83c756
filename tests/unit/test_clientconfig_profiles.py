"""Client config profiles: one per server, chosen by --profile, the server, or current."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from scaleset.cli import app as root
from scaleset.cli import clientconfig
from scaleset.cli.client import ClientFactory
from scaleset.cli.clientconfig import ClientConfigError

A = {"endpoint": "https://a.test:8443", "token": "token-a", "subscription": "sub-a"}
B = {"endpoint": "https://b.test:9443", "token": "token-b", "caFile": "/etc/b.pem"}


def config_file(tmp_path: Path, document: object) -> dict[str, str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    return {"SCALESET_CONFIG": str(path)}


def two_servers(tmp_path: Path, current: str = "a") -> dict[str, str]:
    return config_file(tmp_path, {"current": current, "profiles": {"a": A, "b": B}})


def test_without_a_choice_the_current_profile_applies(tmp_path: Path) -> None:
    resolved = clientconfig.resolve(environ=two_servers(tmp_path, current="b"))
    assert (resolved.profile, resolved.endpoint, resolved.token, resolved.ca_file) == (
        "b", "https://b.test:9443", "token-b", "/etc/b.pem")


def test_the_flag_beats_the_variable_and_both_beat_current(tmp_path: Path) -> None:
    env = two_servers(tmp_path)
    assert clientconfig.resolve(environ={**env, "SCALESET_PROFILE": "b"}).token == "token-b"
    assert clientconfig.resolve(profile="a",
                                environ={**env, "SCALESET_PROFILE": "b"}).token == "token-a"


def test_naming_a_server_picks_its_profile_and_never_another_servers_token(
        tmp_path: Path) -> None:
    env = two_servers(tmp_path)  # current: a
    theirs = clientconfig.resolve(endpoint="https://B.test:9443/", environ=env)
    assert (theirs.profile, theirs.token, theirs.ca_file) == ("b", "token-b", "/etc/b.pem")
    unknown = clientconfig.resolve(endpoint="https://c.test", environ=env)
    assert (unknown.profile, unknown.token, unknown.ca_file) == (None, None, None)
    by_env = clientconfig.resolve(environ={**env, "SCALESET_SERVER": "https://b.test:9443"})
    assert by_env.token == "token-b"


def test_flags_and_environment_still_beat_the_profile(tmp_path: Path) -> None:
    env = {**two_servers(tmp_path), "SCALESET_TOKEN": "env-token"}
    resolved = clientconfig.resolve(subscription="flag-sub", environ=env)
    assert (resolved.profile, resolved.token, resolved.subscription) == (
        "a", "env-token", "flag-sub")


def test_an_unknown_profile_is_an_error_that_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ClientConfigError) as caught:
        clientconfig.resolve(profile="prod", environ=two_servers(tmp_path))
    assert caught.value.code == "ProfileNotFound"
    assert "'prod'" in caught.value.message and "a, b" in caught.value.message
    with pytest.raises(ClientConfigError) as missing:
        clientconfig.resolve(environ={"HOME": str(tmp_path), "SCALESET_PROFILE": "prod"})
    assert missing.value.code == "ProfileNotFound"
    assert "SCALESET_PROFILE" in missing.value.message


def test_a_first_format_file_reads_as_one_current_profile(tmp_path: Path) -> None:
    env = config_file(tmp_path, {"endpoint": "https://old.test:8443", "token": "old-token",
                                 "caFile": "ca.pem"})
    resolved = clientconfig.resolve(environ=env)
    assert (resolved.profile, resolved.endpoint, resolved.token) == (
        "old.test:8443", "https://old.test:8443", "old-token")
    assert resolved.ca_file == str(tmp_path / "ca.pem")  # still relative to the file


def test_serve_migrates_a_first_format_file_and_keeps_its_server(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"endpoint": "https://old.test:8443", "token": "old-token"}))
    clientconfig.write_client_config(path, endpoint="https://127.0.0.1:8443", ca_file=None,
                                     subscription="s", token="new-token")
    document = json.loads(path.read_text())
    assert document["current"] == "127.0.0.1:8443"
    assert document["profiles"]["old.test:8443"] == {"endpoint": "https://old.test:8443",
                                                     "token": "old-token"}
    assert document["profiles"]["127.0.0.1:8443"]["token"] == "new-token"


def test_serve_updates_only_its_own_profile_and_keeps_its_token(tmp_path: Path) -> None:
    env = two_servers(tmp_path)
    path = Path(env["SCALESET_CONFIG"])
    # b restarts with a new CA and prints no new token: the old one still works.
    clientconfig.write_client_config(path, endpoint="https://b.test:9443",
                                     ca_file=tmp_path / "new-ca.pem", subscription="s")
    document = json.loads(path.read_text())
    assert document["profiles"]["a"] == A
    assert document["profiles"]["b"]["token"] == "token-b"
    assert document["profiles"]["b"]["caFile"] == str(tmp_path / "new-ca.pem")
    assert document["current"] == "b"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # tokens inside
    # A new token (the database was reset) replaces the old one.
    clientconfig.write_client_config(path, endpoint="https://b.test:9443", ca_file=None,
                                     subscription="s", token="token-b2")
    assert json.loads(path.read_text())["profiles"]["b"]["token"] == "token-b2"


def test_serve_with_a_profile_name_writes_that_profile(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    clientconfig.write_client_config(path, endpoint="https://127.0.0.1:8443", ca_file=None,
                                     subscription="s", profile="dev")
    document = json.loads(path.read_text())
    assert list(document["profiles"]) == ["dev"] and document["current"] == "dev"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # private even without a token


def test_profiles_that_are_not_objects_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ClientConfigError) as caught:
        clientconfig.resolve(environ=config_file(tmp_path, {"profiles": {"a": "nope"}}))
    assert caught.value.code == "InvalidConfig"


def test_the_profile_option_works_after_the_verb(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"value": []})

    factory = ClientFactory(transport=httpx.MockTransport(answer),
                            environ=two_servers(tmp_path))
    result = CliRunner().invoke(root.app, ["vmss", "list", "--profile", "b"], obj=factory)
    assert result.exit_code == 0, result.output
    assert seen[0].url.host == "b.test"
    assert seen[0].headers["Authorization"] == "Bearer token-b"
