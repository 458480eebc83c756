"""``scaleset secrets rotate``: a new sealing key, every stored secret re-sealed with it.

Offline (the server stopped), like ``scaleset token --data-dir``:

* with the key file (``<data-dir>/secrets.key``): a new key is added to the
  file, every secret is re-sealed with it in one transaction, then the retired
  keys are dropped from the file (``--keep-old-keys`` keeps them, e.g. to still
  open a backup of the database). The token key stays, so tokens still work.
  An SQLite database is then compacted (VACUUM), so no old copy of a value
  (in clear from an older version, or under a retired key) stays in free pages.
* with ``SCALESET_SECRETS_KEY``: the environment cannot be rewritten from here;
  add the new key at the end of the list first, run this, then drop the old
  keys from every replica's environment.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Annotated, Final

import typer
from sqlalchemy.exc import SQLAlchemyError

from scaleset.cli import output
from scaleset.cli.token import DATABASE_FILE, DatabaseUrlOption, database_url, has_store
from scaleset.security import secrets
from scaleset.store.database import open_store
from scaleset.store.repository import Store, StoreError

app = typer.Typer(name="secrets", help="Keys that seal secrets at rest: rotate.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

LOCK_FILE: Final = "serve.lock"


def _fail(code: str, message: str) -> typer.Exit:
    output.error(f"error ({code}): {message}")
    return typer.Exit(1)


def _refuse_if_serving(data_dir: Path) -> None:
    """A running serve holds the old keys in memory and would seal with them again."""
    lock = data_dir / LOCK_FILE
    if not lock.exists():
        return
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise _fail("ServerRunning", f"a scaleset serve is using {data_dir}; stop it, "
                        "rotate, then start it again. Nothing was changed.") from None


def _purge_free_pages(store: Store) -> None:
    """Rewrite the SQLite file so no old copy of a value (in clear, from an older version,
    or under a retired key) survives in its free pages or its WAL."""
    try:
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    except SQLAlchemyError as exc:
        raise StoreError(f"the database could not be compacted: {exc}") from exc


@app.command("rotate")
def rotate(
    data_dir: Annotated[Path, typer.Option(
        "--data-dir", show_default=False, help="The data directory 'scaleset serve' uses.")],
    url: DatabaseUrlOption = None,
    keep_old_keys: Annotated[bool, typer.Option(
        "--keep-old-keys", help="Keep the retired keys in the key file (to open backups).")
    ] = False,
) -> None:
    """Seal every stored secret with a new key (the server stopped)."""
    _refuse_if_serving(data_dir)
    chosen = database_url(data_dir, url)
    if not has_store(chosen):
        where = url or data_dir / DATABASE_FILE
        raise _fail("DatabaseNotFound", f"no scaleset database at {where}; pass the --data-dir "
                    "(or --database-url) 'scaleset serve' uses.")
    try:
        keyring = secrets.load_keyring(data_dir, create=False)
    except StoreError as exc:
        raise _fail("InvalidKey", str(exc)) from exc
    if keyring is None:
        raise _fail("KeyNotFound", f"no {secrets.KEY_FILE} in {data_dir} and no "
                    f"{secrets.ENV_KEY}: start 'scaleset serve' once to create the key.")
    from_env = bool(os.environ.get(secrets.ENV_KEY, "").strip())
    path = data_dir / secrets.KEY_FILE
    new = keyring if from_env else secrets.with_new_key(keyring)
    if not from_env:
        # The new key is on disk before anything is sealed with it: a crash in between
        # leaves a file that still opens every value.
        secrets.write_key_file(path, new)
    store = open_store(chosen, cipher=new)
    try:
        done = secrets.reseal(store)
        if store.engine.url.get_backend_name() == "sqlite":
            _purge_free_pages(store)
    except StoreError as exc:
        raise _fail("StoreError", f"{exc}; nothing was re-sealed (the old keys still open "
                    "every value).") from exc
    finally:
        store.close()
    if not from_env and not keep_old_keys:
        secrets.write_key_file(path, secrets.only_current(new))
    print(json.dumps({"key": new.current, "scaleSets": done.scale_sets,
                      "secrets": done.values, "signingKey": done.signing_key,
                      "keySource": secrets.ENV_KEY if from_env else str(path)}, indent=2))
    if from_env:
        output.error(f"note: sealed with '{new.current}', the last key of {secrets.ENV_KEY}; "
                     "the keys before it may now be removed from every replica.")
