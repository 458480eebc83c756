"""The keyring: sealed values open only with their key, their field, and unaltered."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from scaleset.security import secrets
from scaleset.security.secrets import Keyring, SecretsError
from scaleset.store.sealing import seal_model, unseal_model

KEY_A, KEY_B = bytes(range(32)), bytes(range(1, 33))


def ring(*keys: tuple[str, bytes]) -> Keyring:
    return Keyring(tuple(keys), b"t" * 32)


def test_seal_then_unseal_gives_the_plaintext_and_hides_it() -> None:
    keyring = ring(("a", KEY_A))
    sealed = keyring.seal("hunter2-Passw0rd", context="row|adminPassword")
    assert sealed.startswith("enc:v1:a:") and "hunter2" not in sealed
    assert keyring.unseal(sealed, context="row|adminPassword") == "hunter2-Passw0rd"
    # A fresh nonce each time: equal secrets do not look equal at rest.
    assert keyring.seal("x", context="c") != keyring.seal("x", context="c")


def test_a_tampered_value_is_refused() -> None:
    keyring = ring(("a", KEY_A))
    sealed = keyring.seal("secret", context="c")
    raw = bytearray(base64.urlsafe_b64decode(sealed.split(":", 3)[3]))
    raw[-1] ^= 1
    tampered = "enc:v1:a:" + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(SecretsError, match="integrity check"):
        keyring.unseal(tampered, context="c")


def test_a_value_moved_to_another_field_is_refused() -> None:
    keyring = ring(("a", KEY_A))
    sealed = keyring.seal("secret", context="/sub/a|osProfile.adminPassword")
    with pytest.raises(SecretsError, match="integrity check"):
        keyring.unseal(sealed, context="/sub/b|osProfile.adminPassword")


def test_the_wrong_key_is_refused_and_an_unknown_key_named() -> None:
    sealed = ring(("a", KEY_A)).seal("secret", context="c")
    with pytest.raises(SecretsError, match="integrity check"):
        ring(("a", KEY_B)).unseal(sealed, context="c")
    with pytest.raises(SecretsError, match="key 'a', which is not in the keyring"):
        ring(("b", KEY_B)).unseal(sealed, context="c")


def test_rotation_seals_with_the_newest_and_still_opens_the_old() -> None:
    old = ring(("a", KEY_A))
    sealed_old = old.seal("old secret", context="c")
    rotated = secrets.with_new_key(old)
    assert rotated.current != "a" and rotated.token_key == old.token_key
    sealed_new = rotated.seal("new secret", context="c")
    assert sealed_new.startswith(f"enc:v1:{rotated.current}:")
    assert rotated.unseal(sealed_old, context="c") == "old secret"
    retired = secrets.only_current(rotated)
    assert retired.unseal(sealed_new, context="c") == "new secret"
    with pytest.raises(SecretsError, match="not in the keyring"):
        retired.unseal(sealed_old, context="c")


def test_a_value_stored_before_sealing_reads_as_it_is() -> None:
    assert ring(("a", KEY_A)).unseal("plain old password", context="c") == "plain old password"


def test_environment_keys_oldest_first_the_last_seals() -> None:
    a, b = base64.b64encode(KEY_A).decode(), base64.b64encode(KEY_B).decode()
    keyring = secrets.load_keyring(None, environ={secrets.ENV_KEY: f"one:{a}, {b}"})
    assert keyring is not None
    assert [kid for kid, _ in keyring.keys] == ["one", secrets.key_id(KEY_B)]
    assert keyring.current == secrets.key_id(KEY_B)
    # Replicas given the same variable agree on the token key.
    again = secrets.load_keyring(None, environ={secrets.ENV_KEY: f"one:{a},{b}"})
    assert again is not None and again.digest("sst_x") == keyring.digest("sst_x")


@pytest.mark.parametrize("value", ["nope", base64.b64encode(b"short").decode(),
                                   "bad id!:" + base64.b64encode(KEY_A).decode()])
def test_a_malformed_environment_key_is_refused_naming_the_fix(value: str) -> None:
    with pytest.raises(SecretsError, match=r"SCALESET_SECRETS_KEY: entry 1 is not .*base64"):
        secrets.load_keyring(None, environ={secrets.ENV_KEY: value})


def test_the_key_file_is_generated_once_0600_and_reused(tmp_path: Path) -> None:
    first = secrets.load_keyring(tmp_path, environ={})
    path = tmp_path / secrets.KEY_FILE
    assert first is not None and stat.S_IMODE(path.stat().st_mode) == 0o600
    second = secrets.load_keyring(tmp_path, environ={})
    assert second == first
    os.chmod(path, 0o644)
    secrets.load_keyring(tmp_path, environ={})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secrets.load_keyring(tmp_path / "elsewhere", environ={}, create=False) is None


def test_digests_are_keyed() -> None:
    one, other = Keyring((("a", KEY_A),), b"1" * 32), Keyring((("a", KEY_A),), b"2" * 32)
    assert one.digest("sst_token") != other.digest("sst_token")
    assert len(one.digest("sst_token")) == 64


def test_a_model_has_its_three_kinds_of_secret_sealed_and_opened() -> None:
    keyring = ring(("a", KEY_A))
    body = {"properties": {"virtualMachineProfile": {
        "osProfile": {"adminUsername": "azureuser", "adminPassword": "P@ssw0rd-1",
                      "customData": "ZWNobyBoaQ=="},
        "extensionProfile": {"extensions": [
            {"name": "cse", "properties": {"settings": {"a": 1},
                                           "protectedSettings": {"commandToExecute": "x"}}}]}}}}
    sealed = seal_model(body, keyring, "/sub/ss")
    text = repr(sealed)
    assert "P@ssw0rd-1" not in text and "ZWNobyBoaQ==" not in text
    assert "commandToExecute" not in text and "azureuser" in text and "'a': 1" in text
    assert unseal_model(sealed, keyring, "/sub/ss") == body
    assert seal_model(body, None, "/sub/ss") is body  # no cipher: as written
