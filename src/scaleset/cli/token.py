"""``scaleset token ...``: create, list and revoke the API's bearer tokens.

They talk to the running server (``/scaleset/tokens``, a contributor token
needed), connected like every client verb (``--server``, ``--token``,
``--profile`` ...). ``--data-dir`` (or ``--database-url``), given explicitly,
opens the server's database instead: the offline path, to bootstrap or recover
access with the server stopped. It refuses a directory (or URL) that holds no
scaleset database rather than create one, so a typo cannot mint a token nobody
checks.

``create`` prints the token once, alone on stdout's last line, so a script can
capture it (``TOKEN=$(scaleset token create --role reader)``); the hint for
people goes to stderr. ``list`` never shows secrets. Failures print
``error (Code): message`` on stderr and exit 1; usage mistakes exit 2.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from alembic.util import CommandError
from sqlalchemy import inspect, make_url
from sqlalchemy.exc import SQLAlchemyError

from scaleset.cli import connection, output
from scaleset.cli.client import connect
from scaleset.cli.output import Column, OutputFormat, OutputOption
from scaleset.clock import SystemClock
from scaleset.errors import NotFound, ScalesetError
from scaleset.model.durations import format_duration, parse_duration
from scaleset.security import secrets, tokens
from scaleset.store.database import make_engine, open_store
from scaleset.store.repository import Store, StoreError

DATABASE_FILE: Final = "scaleset.db"
TOKENS: Final = "/scaleset/tokens"

app = connection.client_app(name="token", help="Bearer tokens for the API: create, list, revoke.",
                            no_args_is_help=True, add_completion=False,
                            pretty_exceptions_enable=False)

TOKEN_COLUMNS: Final = (Column("Id", "id"), Column("Name", "name"), Column("Role", "role"),
                        Column("CreatedAt", "createdAt"), Column("ExpiresAt", "expiresAt"))

# No envvar on purpose: a SCALESET_DATA_DIR exported for serve must not silently turn
# these verbs away from the server.
DataDirOption = Annotated[Path | None, typer.Option(
    "--data-dir", show_default=False, rich_help_panel="Offline (server stopped)",
    help="Open this server data directory's database instead of calling the server.")]
DatabaseUrlOption = Annotated[str | None, typer.Option(
    "--database-url", show_default=False, rich_help_panel="Offline (server stopped)",
    help="Open this database instead of calling the server.")]


def database_url(data_dir: Path, database_url: str | None) -> str:
    """The database ``serve`` and the token verbs use: the URL if given, else SQLite in data_dir.

    >>> database_url(Path("/srv/scaleset"), None)
    'sqlite:////srv/scaleset/scaleset.db'
    >>> database_url(Path("/srv/scaleset"), "postgresql+psycopg://db/scaleset")
    'postgresql+psycopg://db/scaleset'
    """
    return database_url or f"sqlite:///{(data_dir / DATABASE_FILE).resolve()}"


def expiry(value: str, now: datetime) -> tuple[str, str]:
    """``--expires`` as the API's field: ``("expiresIn", ISO duration)`` or ``("expiresAt", …)``.

    A duration is ISO 8601 (``P30D``, ``PT12H``) or seconds; anything else must be an
    ISO 8601 instant with a UTC offset.

    >>> expiry("P30D", now=datetime(2027, 1, 1).astimezone())
    ('expiresIn', 'P30D')
    >>> expiry("3600", now=datetime(2027, 1, 1).astimezone())
    ('expiresIn', 'PT1H')
    >>> expiry("2027-02-01T00:00:00Z", now=datetime(2027, 1, 1).astimezone())
    ('expiresAt', '2027-02-01T00:00:00+00:00')
    """
    text = value.strip()
    if text[:1].upper() == "P" or text.replace(".", "", 1).isdigit():
        try:
            duration = parse_duration(float(text) if text[:1].isdigit() else text)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--expires") from exc
        return "expiresIn", format_duration(duration)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"'{value}' is neither a duration (P30D, PT12H, seconds) nor an ISO 8601 time "
            "(2027-01-01T00:00:00Z)", param_hint="--expires") from None
    if at.tzinfo is None:
        raise typer.BadParameter(f"'{value}' needs a UTC offset, e.g. {text}Z",
                                 param_hint="--expires")
    return "expiresAt", at.isoformat()


def _offline(data_dir: Path | None, url: str | None) -> bool:
    return data_dir is not None or url is not None


def has_store(url: str) -> bool:
    """Whether ``url`` holds a scaleset database already (without creating anything).

    >>> has_store("sqlite:////nonexistent/scaleset.db")
    False
    """
    if url.startswith("sqlite"):
        # Connecting through the engine would create the file (and set WAL mode): look
        # read-only instead.
        name = make_url(url).database
        if not name or not Path(name).is_file():
            return False
        with closing(sqlite3.connect(f"{Path(name).resolve().as_uri()}?mode=ro",
                                     uri=True)) as conn:
            try:
                found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                     "AND name = 'tokens'").fetchone()
            except sqlite3.DatabaseError:  # not an SQLite file at all
                return False
        return found is not None
    engine = make_engine(url)
    try:
        return inspect(engine).has_table("tokens")
    finally:
        engine.dispose()


@contextmanager
def _store(data_dir: Path | None, url: str | None) -> Iterator[Store]:
    """The database the flags name, with failures as ``error (Code): message`` and exit 1."""
    chosen = database_url(data_dir or Path("."), url)
    try:
        present = has_store(chosen)
    except (SQLAlchemyError, OSError, sqlite3.Error) as exc:
        output.error(f"error (StoreError): cannot open the database: {exc}")
        raise typer.Exit(1) from exc
    if not present:
        where = url if url is not None else str((data_dir or Path(".")) / DATABASE_FILE)
        output.error(f"error (DatabaseNotFound): no scaleset database at {where}; pass the "
                     "--data-dir (or --database-url) 'scaleset serve' uses. Nothing was "
                     "created.")
        raise typer.Exit(1)
    try:
        # The server's keyring: token digests and sealed secrets must match what serve uses.
        store = open_store(chosen, cipher=secrets.load_keyring(data_dir))
    except (SQLAlchemyError, CommandError, OSError, StoreError) as exc:
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


def _wire(info: tokens.TokenInfo) -> dict[str, Any]:
    return {"id": info.token_id, "name": info.description, "role": info.role.value,
            "createdAt": info.created_at.isoformat(),
            "expiresAt": info.expires_at.isoformat() if info.expires_at else None}


@app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[tokens.Role, typer.Option(
        "--role", case_sensitive=False,
        help="reader: GET only; contributor: also writes, actions and tokens.")]
    = tokens.Role.READER,
    name: Annotated[str | None, typer.Option(
        "--name", "--description", help="Who or what the token is for.",
        show_default=False)] = None,
    expires: Annotated[str | None, typer.Option(
        "--expires", metavar="DURATION|TIME", show_default=False,
        help="P30D, PT12H, seconds, or an ISO 8601 time such as 2027-01-01T00:00:00Z. "
             "Default: never.")] = None,
    data_dir: DataDirOption = None,
    url: DatabaseUrlOption = None,
) -> None:
    """Create a token and print it once (alone on stdout's last line)."""
    now = SystemClock().now()
    field = expiry(expires, now) if expires is not None else None
    if _offline(data_dir, url):
        with _store(data_dir, url) as store:
            at = None
            if field is not None:
                at = (now + parse_duration(field[1]) if field[0] == "expiresIn"
                      else datetime.fromisoformat(field[1]))
            issued = tokens.create_token(store, role=role, description=name,
                                         expires_at=at, now=now)
        token_id, secret, role_name = issued.token_id, issued.token, issued.role.value
    else:
        body: dict[str, Any] = {"role": role.value}
        if name is not None:
            body["name"] = name
        if field is not None:
            body[field[0]] = field[1]
        with output.reporting(), connect(ctx) as client:
            created = client.post(TOKENS, body)
        token_id, secret, role_name = created["id"], created["token"], created["role"]
    output.error(f"Created {role_name} token {token_id}. This is the only time it is shown; "
                 f"store it now (revoke it with 'scaleset token revoke {token_id}').")
    typer.echo(secret)


@app.command("list")
def list_(
    ctx: typer.Context,
    output_format: OutputOption = OutputFormat.json,
    data_dir: DataDirOption = None,
    url: DatabaseUrlOption = None,
) -> None:
    """List tokens: id, name, role, creation and expiry times (never the secret)."""
    if _offline(data_dir, url):
        with _store(data_dir, url) as store:
            items = [_wire(i) for i in tokens.list_tokens(store)]
    else:
        with output.reporting(), connect(ctx) as client:
            items = list(client.paged(TOKENS))
    output.emit(items, output_format, columns=TOKEN_COLUMNS)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="ID", show_default=False,
                                            help="The id 'scaleset token list' shows.")],
    data_dir: DataDirOption = None,
    url: DatabaseUrlOption = None,
) -> None:
    """Revoke a token: requests that carry it get 401 from now on."""
    if _offline(data_dir, url):
        with _store(data_dir, url) as store:
            if not tokens.revoke_token(store, token_id):
                raise NotFound(f"No token has id '{token_id}'; 'scaleset token list' shows "
                               "them.", target="id")
    else:
        with output.reporting(), connect(ctx) as client:
            client.delete(f"{TOKENS}/{token_id}")
    output.error(f"Revoked token {token_id}.")
