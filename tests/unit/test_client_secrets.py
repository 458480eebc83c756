"""Client secrets a user can paste after ``-p`` in any command line."""

from unittest import mock

from scaleset.security import principals


def test_a_secret_never_starts_with_a_dash() -> None:
    """argparse (az) reads ``-p -x…`` as a missing value: such a secret is drawn again."""
    drawn = iter(["-" + "a" * 39, "--" + "b" * 38, "c" * 40])
    with mock.patch.object(principals.secrets, "token_urlsafe", lambda n: next(drawn)):
        assert principals.new_secret() == "c" * 40


def test_secrets_are_forty_url_safe_characters_and_differ() -> None:
    drawn = {principals.new_secret() for _ in range(2000)}
    assert len(drawn) == 2000
    for secret in drawn:
        assert len(secret) == 40 and not secret.startswith("-")
        assert all(c.isalnum() or c in "-_" for c in secret)
