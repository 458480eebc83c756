"""A live ``scaleset serve`` keeps tokens' roles in memory, yet a token revoked offline with
``scaleset token revoke --data-dir`` (another process, the same database) is refused by the
very next request."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.server import running_server
from tests.e2e.test_cli_token import create, token_cli

SETS = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/"
        "virtualMachineScaleSets?api-version=2026-04-01")


def test_a_token_revoked_offline_is_refused_by_the_running_servers_next_request(
        tmp_path: Path) -> None:
    with running_server(tmp_path) as server, server.http() as http:
        reader = create(tmp_path, "--role", "reader")  # offline, beside the server
        for _ in range(3):  # the role is in the server's memory after the first
            assert http.get(SETS, headers={"Authorization": f"Bearer {reader}"}
                            ).status_code == 200
        done = token_cli("revoke", reader.split("_")[1], "--data-dir", tmp_path)
        assert done.returncode == 0, done.stderr
        refused = http.get(SETS, headers={"Authorization": f"Bearer {reader}"})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"
        assert http.get(SETS).status_code == 200  # the server's own token still works
