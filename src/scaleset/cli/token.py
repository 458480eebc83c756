"""``scaleset token ...``: create, list and revoke the API's bearer tokens.

These verbs open the server's database directly (they are for whoever runs
``serve``, not for API clients), found the way ``serve`` finds it:
``--database-url`` / ``SCALESET_DATABASE_URL``, else SQLite at
``<data-dir>/scaleset.db`` with ``--data-dir`` / ``SCALESET_DATA_DIR``
(default ``./.scaleset``).

``create`` prints the token once, alone on stdout's last line, so a script can
capture it (``TOKEN=$(scaleset token create --role reader)``); the hint for
people goes to stderr. ``list`` never shows secrets. Failures print
``error (Code): message`` on stderr and exit 1; usage mistakes exit 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Final

import typer
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from scaleset.cli import output
from scaleset.cli.output import Column, OutputFormat, OutputOption
from scaleset.clock import SystemClock
from scaleset.errors import NotFound, ScalesetError
from scaleset.security import tokens
from scaleset.store.database import open_store
from scaleset.store.repository import Store, StoreError

DEFAULT_DATA_DIR: Final = Path(".scaleset")
DATABASE_FILE: Final = "scaleset.db"

app = typer.Typer(name="token", help="Bearer tokens for the API: create, list, revoke.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

TOKEN_COLUMNS: Final = (Column("TokenId", "tokenId"), Column("Role", "role"),
                        Column("Description", "description"), Column("CreatedAt", "createdAt"))

DataDirOption = Annotated[Path, typer.Option(
    "--data-dir", envvar="SCALESET_DATA_DIR", help="The server's data directory.")]
DatabaseUrlOption = Annotated[str | None, typer.Option(
    "--database-url", envvar="SCALESET_DATABASE_URL",
    help="Default: SQLite in the data directory.", show_default=False)]


def database_url(data_dir: Path, database_url: str | None) -> str:
    """The database ``serve`` and the token verbs use: the URL if given, else SQLite in data_dir.

    >>> database_url(Path("/srv/scaleset"), None)
    'sqlite:////srv/scaleset/scaleset.db'
    >>> database_url(Path("/srv/scaleset"), "postgresql+psycopg://db/scaleset")
    'postgresql+psycopg://db/scaleset'
    """
    return database_url or f"sqlite:///{(data_dir / DATABASE_FILE).resolve()}"


@contextmanager
def _store(data_dir: Path, url: str | None, *, create: bool) -> Iterator[Store]:
    """The store, with failures turned into ``error (Code): message`` and exit code 1."""
    if url is None:
        if create:
            data_dir.mkdir(parents=True, exist_ok=True)
        elif not (data_dir / DATABASE_FILE).exists():
            output.error(f"error (DatabaseNotFound): no database at {data_dir / DATABASE_FILE}; "
                         "pass the server's --data-dir (or --database-url), or create a token "
                         "first.")
            raise typer.Exit(1)
    try:
        store = open_store(database_url(data_dir, url))
    except (SQLAlchemyError, CommandError, OSError) as exc:
        output.error(f"error (StoreError): cannot open the database: {exc}")
        raise typer.Exit(1) from exc
    try:
        yield store
    except ScalesetError as exc:
        output.error(f"error ({exc.code}): {exc.message}")
        raise typer.Exit(1) from exc
    except StoreError as exc:
        output.error(f"error (StoreError): {exc}")
        raise typer.Exit(1) from exc
    finally:
        store.close()


@app.command("create")
def create(
    role: Annotated[tokens.Role, typer.Option(
        "--role", case_sensitive=False, show_default=False,
        help="reader: GET only; contributor: also writes and actions.")],
    description: Annotated[str | None, typer.Option(
        "--description", help="Who or what the token is for.", show_default=False)] = None,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    url: DatabaseUrlOption = None,
) -> None:
    """Create a token and print it once (alone on stdout's last line)."""
    with _store(data_dir, url, create=True) as store:
        issued = tokens.create_token(store, role=role, description=description,
                                     now=SystemClock().now())
    output.error(f"Created {issued.role.value} token {issued.token_id}. This is the only time "
                 "it is shown; store it now (revoke it with 'scaleset token revoke "
                 f"{issued.token_id}').")
    typer.echo(issued.token)


@app.command("list")
def list_(
    output_format: OutputOption = OutputFormat.json,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    url: DatabaseUrlOption = None,
) -> None:
    """List tokens: id, role, description, creation time (never the secret)."""
    with _store(data_dir, url, create=False) as store:
        found = tokens.list_tokens(store)
    items = [{"tokenId": i.token_id, "role": i.role.value, "description": i.description,
              "createdAt": i.created_at.isoformat()} for i in found]
    output.emit(items, output_format, columns=TOKEN_COLUMNS)


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The id 'scaleset token list' shows.",
                                            show_default=False)],
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    url: DatabaseUrlOption = None,
) -> None:
    """Revoke a token: requests that carry it are refused from now on."""
    with _store(data_dir, url, create=False) as store:
        if not tokens.revoke_token(store, token_id):
            raise NotFound(f"No token has id '{token_id}'; 'scaleset token list' shows them.",
                           target="token_id")
    output.error(f"Revoked token {token_id}.")
