"""``scaleset sp ...``: service principals for ``az login --service-principal`` and
azure-identity's ``ClientSecretCredential``: create, list, delete.

Like ``scaleset token``, they call the running server
(``/scaleset/servicePrincipals``, a contributor token needed), or, with
``--data-dir``/``--database-url`` given explicitly, open the server's database
(the offline path, server stopped; a directory without a scaleset database is
refused, nothing is created).

``create`` prints what ``az ad sp create-for-rbac`` prints, as JSON on stdout:
``{"appId", "displayName", "password", "tenant"}``. The password is shown only
then. ``delete`` revokes: the principal's access tokens get 401 from the next
request.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import typer

from scaleset.cli import connection, output
from scaleset.cli.client import connect
from scaleset.cli.output import Column, OutputFormat, OutputOption
from scaleset.cli.token import DatabaseUrlOption, DataDirOption
from scaleset.cli.token import _store as offline_store  # the same offline rules as tokens
from scaleset.clock import SystemClock
from scaleset.errors import NotFound
from scaleset.security import authority, principals
from scaleset.security.tokens import Role

PRINCIPALS: Final = "/scaleset/servicePrincipals"

app = connection.client_app(
    name="sp", help="Service principals (az login --service-principal): create, list, delete.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

COLUMNS: Final = (Column("AppId", "appId"), Column("DisplayName", "displayName"),
                  Column("Role", "role"), Column("CreatedAt", "createdAt"))


@app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[Role, typer.Option(
        "--role", case_sensitive=False,
        help="reader: GET only; contributor: also writes and actions.")] = Role.CONTRIBUTOR,
    name: Annotated[str | None, typer.Option(
        "--name", "-n", "--display-name", show_default=False,
        help="Display name (default scaleset-sp-<time>).")] = None,
    data_dir: DataDirOption = None,
    url: DatabaseUrlOption = None,
) -> None:
    """Create a service principal and print appId, displayName, password, tenant (once)."""
    if data_dir is not None or url is not None:
        with offline_store(data_dir, url) as store:
            now = SystemClock().now()
            tenant = authority.server_identity(store, now=now).tenant_id
            issued = principals.create_principal(store, role=role, name=name, now=now)
        created: dict[str, Any] = {"appId": issued.principal.app_id,
                                   "displayName": issued.principal.display_name,
                                   "password": issued.password, "tenant": tenant}
    else:
        body: dict[str, Any] = {"role": role.value}
        if name is not None:
            body["name"] = name
        with output.reporting(), connect(ctx) as client:
            answer = client.post(PRINCIPALS, body)
        created = {k: answer[k] for k in ("appId", "displayName", "password", "tenant")}
    output.error("The password is shown only now; store it. Sign in with: az login "
                 f"--service-principal -u {created['appId']} -p <password> --tenant "
                 f"{created['tenant']} (delete it with 'scaleset sp delete "
                 f"{created['appId']}').")
    output.emit(created, OutputFormat.json)


@app.command("list")
def list_(
    ctx: typer.Context,
    output_format: OutputOption = OutputFormat.json,
    data_dir: DataDirOption = None,
    url: DatabaseUrlOption = None,
) -> None:
    """List service principals: appId, name, role, creation time (never the password)."""
    if data_dir is not None or url is not None:
        with offline_store(data_dir, url) as store:
            items = [p.to_wire() for p in principals.list_principals(store)]
    else:
        with output.reporting(), connect(ctx) as client:
            items = list(client.paged(PRINCIPALS))
    output.emit(items, output_format, columns=COLUMNS)


@app.command("delete")
def delete(
    ctx: typer.Context,
    app_id: Annotated[str, typer.Argument(metavar="APP_ID", show_default=False,
                                          help="The appId 'scaleset sp list' shows.")],
    data_dir: DataDirOption = None,
    url: DatabaseUrlOption = None,
) -> None:
    """Delete a service principal: its tokens get 401 from the next request."""
    if data_dir is not None or url is not None:
        with offline_store(data_dir, url) as store:
            if not principals.delete_principal(store, app_id):
                raise NotFound(f"No service principal has appId '{app_id}'; 'scaleset sp "
                               "list' shows them.", target="appId")
    else:
        with output.reporting(), connect(ctx) as client:
            client.delete(f"{PRINCIPALS}/{app_id}")
    output.error(f"Deleted service principal {app_id}.")
