"""azure-identity's ClientSecretCredential, unmodified, against a real ``scaleset serve``.

The credential signs in at the server's own authority (``authority=<server>``)
and the Compute client (sync and async) lists scale sets with the token it
gets. The client asks its default scope, ``https://management.azure.com/.default``;
the authority maps Azure's ARM audience to this server. The sync credential
is MSAL, which would check an unknown authority with login.microsoftonline.com
(instance discovery): ``disable_instance_discovery=True`` is the documented way
to use a private authority. The async credential calls the token endpoint
directly. TLS trusts the server's CA with ``connection_verify``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator

import pytest

pytest.importorskip("azure.identity")
pytest.importorskip("aiohttp")
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ClientSecretCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.aio import ComputeManagementClient as AsyncComputeClient

from tests.e2e.server import Server, running_server
from tests.e2e.test_az_login import RG, publish_and_create, scaleset_cli

SUB = "00000000-0000-0000-0000-0000000000ab"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("identity")) as s:
        publish_and_create(s, SUB, "api")
        yield s


def principal(server: Server, role: str = "reader") -> dict[str, str]:
    done = scaleset_cli(server, "sp", "create", "--role", role)
    assert done.returncode == 0, done.stderr
    created: dict[str, str] = json.loads(done.stdout)
    return created


def credential(server: Server, sp: dict[str, str], secret: str | None = None
               ) -> ClientSecretCredential:
    return ClientSecretCredential(sp["tenant"], sp["appId"], secret or sp["password"],
                                  authority=server.endpoint, disable_instance_discovery=True,
                                  connection_verify=str(server.ca))


def test_the_sync_compute_client_lists_scale_sets_with_a_client_secret(server: Server) -> None:
    sp = principal(server)
    with credential(server, sp) as cred:
        client = ComputeManagementClient(cred, SUB, base_url=server.endpoint,
                                         connection_verify=str(server.ca), retry_total=0)
        assert [s.name for s in client.virtual_machine_scale_sets.list(RG)] == ["api"]
        assert "api" in [s.name for s in client.virtual_machine_scale_sets.list_all()]
        token = cred.get_token("https://management.azure.com/.default")
        assert token.token.count(".") == 2 and token.expires_on > 0


def test_the_async_compute_client_lists_scale_sets_with_a_client_secret(server: Server
                                                                        ) -> None:
    sp = principal(server)

    async def names() -> list[str]:
        async with AsyncClientSecretCredential(sp["tenant"], sp["appId"], sp["password"],
                                               authority=server.endpoint,
                                               connection_verify=str(server.ca)) as cred:
            async with AsyncComputeClient(cred, SUB, base_url=server.endpoint,
                                          connection_verify=str(server.ca),
                                          retry_total=0) as client:
                return [s.name async for s in client.virtual_machine_scale_sets.list(RG)]

    assert asyncio.run(names()) == ["api"]


def test_a_wrong_secret_is_an_authentication_error_naming_aadsts7000215(server: Server
                                                                       ) -> None:
    sp = principal(server)
    with credential(server, sp, secret="wrong") as cred:
        with pytest.raises(ClientAuthenticationError) as raised:
            cred.get_token("https://management.azure.com/.default")
    assert "AADSTS7000215" in str(raised.value)


def test_a_deleted_principals_token_is_refused_at_the_next_call(server: Server) -> None:
    sp = principal(server, "contributor")
    with credential(server, sp) as cred:
        client = ComputeManagementClient(cred, SUB, base_url=server.endpoint,
                                         connection_verify=str(server.ca), retry_total=0)
        assert [s.name for s in client.virtual_machine_scale_sets.list(RG)] == ["api"]
        done: subprocess.CompletedProcess[str] = scaleset_cli(server, "sp", "delete",
                                                              sp["appId"])
        assert done.returncode == 0, done.stderr
        with pytest.raises(HttpResponseError) as raised:
            list(client.virtual_machine_scale_sets.list(RG))
        assert raised.value.status_code == 401
