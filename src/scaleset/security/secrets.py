"""Secrets at rest: a keyring of AES-256-GCM keys, sealed values, keyed token digests.

A sealed value reads ``enc:v1:<kid>:<base64url(nonce + ciphertext)>``: the key id
says which key of the keyring opens it, the 12-byte nonce is random per value, and
the caller's ``aad`` (the row and field a value belongs to) is authenticated, so a
sealed value copied into another row or field is refused like a tampered one.

Where the keys come from (``load_keyring``):

* ``SCALESET_SECRETS_KEY`` (for several replicas sharing one database): a comma
  list of entries, oldest first, each ``<kid>:<base64 of 32 bytes>`` or a bare
  base64 key (its id is then derived from the key). The last key seals; the
  others only open what they sealed. An entry ``token-hmac:<key>`` keys token
  digests; without one, the first key listed does.
* else ``<data-dir>/secrets.key`` (mode 0600, generated on first start): one
  entry a line in the same form, with its own ``token-hmac`` line.

The token key is separate from the sealing keys so that rotating the sealing
key (``scaleset secrets rotate``) re-seals every stored secret without making
every bearer token unknown (a token's digest cannot be recomputed without it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets as random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sqlalchemy import select, update

from scaleset.security.authority import IDENTITY_ID, KEY_CONTEXT
from scaleset.store import tables as t
from scaleset.store.repository import Store, StoreError
from scaleset.store.sealing import seal_model, secret_fields, unseal_model

ENV_KEY: Final = "SCALESET_SECRETS_KEY"
KEY_FILE: Final = "secrets.key"
TOKEN_KID: Final = "token-hmac"
PREFIX: Final = "enc:v1:"
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class SecretsError(StoreError):
    """A key is malformed or missing, or a sealed value does not open.

    A ``StoreError``: to the API a value it cannot open is a store it cannot read.
    """


def key_id(key: bytes) -> str:
    """The id a bare key gets: stable, so replicas given the same key agree.

    >>> key_id(bytes(32))
    'k66687aad'
    """
    return "k" + hashlib.sha256(key).hexdigest()[:8]


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return random.token_bytes(KEY_BYTES)


def encode_key(key: bytes) -> str:
    """A key as it is written in the key file or the environment (standard base64)."""
    return base64.b64encode(key).decode("ascii")


@dataclass(frozen=True)
class Keyring:
    """Sealing keys (oldest first; the last seals) and the key of token digests."""

    keys: tuple[tuple[str, bytes], ...] = field(repr=False)
    token_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise SecretsError("a keyring needs at least one sealing key")
        for kid, key in self.keys:
            if not _KID.match(kid) or len(key) != KEY_BYTES:
                raise SecretsError(f"key '{kid}' is malformed: an id of 1 to 32 letters, "
                                   f"digits, '-' or '_' and {KEY_BYTES} bytes are needed")

    @property
    def current(self) -> str:
        """The id of the key that seals."""
        return self.keys[-1][0]

    def seal_bytes(self, plaintext: bytes, aad: bytes) -> str:
        """``plaintext`` encrypted with the newest key, bound to ``aad``."""
        kid, key = self.keys[-1]
        nonce = random.token_bytes(NONCE_BYTES)
        body = AESGCM(key).encrypt(nonce, plaintext, aad)
        return f"{PREFIX}{kid}:{base64.urlsafe_b64encode(nonce + body).decode('ascii')}"

    def unseal_bytes(self, sealed: str, aad: bytes) -> bytes:
        """The plaintext of a sealed value; ``SecretsError`` when it does not open."""
        if not is_sealed(sealed):
            raise SecretsError("the value is not a sealed secret")
        kid, _, payload = sealed[len(PREFIX):].partition(":")
        key = dict(self.keys).get(kid)
        if key is None:
            raise SecretsError(
                f"a stored secret is sealed with key '{kid}', which is not in the keyring "
                f"(keys: {', '.join(k for k, _ in self.keys)}); start with the key file or "
                f"{ENV_KEY} that sealed it")
        try:
            raw = base64.urlsafe_b64decode(payload.encode("ascii"))
            return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError, binascii.Error):
            raise SecretsError(f"a stored secret sealed with key '{kid}' failed its "
                               "integrity check (altered, or moved from another field)") from None

    # -- the store's FieldCipher --------------------------------------------------
    def seal(self, plaintext: str, *, context: str) -> str:
        """A string sealed for the field ``context`` names."""
        return self.seal_bytes(plaintext.encode("utf-8"), context.encode("utf-8"))

    def unseal(self, value: str, *, context: str) -> str:
        """The clear text of ``value``; a value stored before sealing began is returned as is."""
        if not is_sealed(value):
            return value
        return self.unseal_bytes(value, context.encode("utf-8")).decode("utf-8")

    def digest(self, data: str) -> str:
        """The keyed digest (HMAC-SHA256, hex) of ``data``: a token's key in its table."""
        return hmac.new(self.token_key, data.encode("utf-8"), hashlib.sha256).hexdigest()


def is_sealed(value: object) -> bool:
    """Whether ``value`` is a sealed secret.

    >>> is_sealed("enc:v1:k1:AAAA"), is_sealed("hunter2"), is_sealed(None)
    (True, False, False)
    """
    return isinstance(value, str) and value.startswith(PREFIX)


def _token_key_from(key: bytes) -> bytes:
    # A derived key, so the AES key itself is never used as an HMAC key.
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                info=b"scaleset token-hmac").derive(key)


def parse_entries(text: str, *, source: str) -> tuple[list[tuple[str, bytes]], bytes | None]:
    """The ``(kid, key)`` entries of a key list (commas or lines) and its token key, if any."""
    keys: list[tuple[str, bytes]] = []
    token: bytes | None = None
    for number, raw in enumerate(re.split(r"[,\n]", text), start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        kid, sep, encoded = entry.rpartition(":")
        try:
            key = base64.b64decode(encoded.encode("ascii"), validate=True)
        except (ValueError, binascii.Error):
            key = b""
        if len(key) != KEY_BYTES or (sep and not _KID.match(kid)):
            raise SecretsError(
                f"{source}: entry {number} is not '<id>:<base64 of {KEY_BYTES} bytes>' or a "
                f"bare base64 key; generate one with: python -c \"import os,base64;"
                f"print(base64.b64encode(os.urandom(32)).decode())\"")
        if kid == TOKEN_KID:
            token = key
        else:
            keys.append((kid or key_id(key), key))
    if not keys:
        raise SecretsError(f"{source} holds no sealing key")
    return keys, token


def keyring_from_text(text: str, *, source: str) -> Keyring:
    """A keyring from the key-list syntax (``SCALESET_SECRETS_KEY`` or the key file)."""
    keys, token = parse_entries(text, source=source)
    return Keyring(tuple(keys), token if token is not None else _token_key_from(keys[0][1]))


def render(keyring: Keyring) -> str:
    """A keyring in the key file's syntax (secret: write it 0600)."""
    lines = ["# scaleset secrets keyring: keep it private; the last key seals.",
             f"{TOKEN_KID}:{encode_key(keyring.token_key)}"]
    lines += [f"{kid}:{encode_key(key)}" for kid, key in keyring.keys]
    return "\n".join(lines) + "\n"


def write_key_file(path: Path, keyring: Keyring) -> None:
    """Write the key file atomically, mode 0600 from its creation."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(render(keyring))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def generate_keyring() -> Keyring:
    """A new keyring: one sealing key (its id carries the creation time) and a token key."""
    return Keyring(((f"k{int(time.time())}", new_key()),), new_key())


def load_keyring(data_dir: Path | None, *, environ: Mapping[str, str] | None = None,
                 create: bool = True) -> Keyring | None:
    """The server's keyring: from ``SCALESET_SECRETS_KEY``, else the data directory's key file.

    ``create`` generates the key file when it is missing (what ``serve`` does on its
    first start); without it a missing file gives None.
    """
    env = os.environ if environ is None else environ
    value = (env.get(ENV_KEY) or "").strip()
    if value:
        return keyring_from_text(value, source=ENV_KEY)
    if data_dir is None:
        return None
    path = data_dir / KEY_FILE
    if path.exists():
        os.chmod(path, 0o600)  # a copy restored with a looser mode is tightened
        return keyring_from_text(path.read_text(encoding="ascii"), source=str(path))
    if not create:
        return None
    keyring = generate_keyring()
    try:
        # O_EXCL: two processes starting at once must not each write a different key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return keyring_from_text(path.read_text(encoding="ascii"), source=str(path))
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(render(keyring))
        out.flush()
        os.fsync(out.fileno())
    return keyring


def with_new_key(keyring: Keyring) -> Keyring:
    """``keyring`` with a new newest key (which seals from now on); the token key is kept."""
    kid = f"k{int(time.time())}"
    while kid in dict(keyring.keys):  # rotated twice within a second
        kid = f"k{int(time.time())}{random.token_hex(2)}"
    return Keyring((*keyring.keys, (kid, new_key())), keyring.token_key)


def only_current(keyring: Keyring) -> Keyring:
    """``keyring`` without its retired sealing keys (once nothing is sealed with them)."""
    return Keyring(keyring.keys[-1:], keyring.token_key)


@dataclass(frozen=True)
class Resealed:
    """What ``reseal`` rewrote."""

    scale_sets: int
    values: int
    signing_key: bool


def reseal(store: Store) -> Resealed:
    """Open every stored secret and seal it again with the store's newest key, in one
    transaction (so a failure leaves every value as it was).

    ``store.cipher`` must hold every key in use (the old ones and the new one).
    """
    cipher = store.cipher
    if cipher is None:
        raise SecretsError("re-sealing needs the store's keyring")
    c = t.scale_sets.c
    rewritten = values = 0
    with store.transaction() as tx:
        for row in tx.conn.execute(select(c.id, c.model)).all():
            clear = unseal_model(row.model, cipher, row.id)
            sealed = seal_model(clear, cipher, row.id)
            count = sum(1 for _ in secret_fields(sealed, row.id))
            if count:
                tx.conn.execute(update(t.scale_sets).where(c.id == row.id)
                                .values(model=sealed))
                rewritten, values = rewritten + 1, values + count
        r = t.resources.c
        found = tx.conn.execute(select(r.state).where(r.id == IDENTITY_ID.lower())).first()
        key = found is not None and isinstance((found.state or {}).get("privateKey"), str)
        if found is not None and key:
            pem = cipher.unseal(found.state["privateKey"], context=KEY_CONTEXT)
            tx.conn.execute(update(t.resources).where(r.id == IDENTITY_ID.lower()).values(
                state={**found.state, "privateKey": cipher.seal(pem, context=KEY_CONTEXT)}))
    return Resealed(rewritten, values + (1 if key else 0), key)


def check_opens(store: Store) -> None:
    """Refuse a keyring that cannot open what is stored (a wrong key file or variable),
    at start rather than as failed requests: tries the signing key and one scale set."""
    cipher = store.cipher
    if cipher is None:
        return
    r, c = t.resources.c, t.scale_sets.c
    with store.transaction() as tx:
        found = tx.conn.execute(select(r.state).where(r.id == IDENTITY_ID.lower())).first()
        sample = tx.conn.execute(select(c.id, c.model).limit(1)).first()
    key = (found.state or {}).get("privateKey") if found is not None else None
    if isinstance(key, str):
        cipher.unseal(key, context=KEY_CONTEXT)
    if sample is not None:
        unseal_model(sample.model, cipher, sample.id)
