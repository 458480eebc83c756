"""Where the client verbs connect, and with which token: one resolved ``ClientConfig``.

Each setting is resolved on its own, first match wins:

1. a flag (``--server``/``--endpoint``, ``--token``, ``--ca-file``, ``--subscription``;
   declared once, in :mod:`scaleset.cli.connection`);
2. the environment (``SCALESET_SERVER`` or its older name ``SCALESET_ENDPOINT``,
   ``SCALESET_TOKEN``, ``SCALESET_CA_FILE``, ``SCALESET_SUBSCRIPTION``; an empty
   variable counts as unset);
3. the config file ``serve`` writes: JSON ``{"endpoint", "caFile", "subscription",
   "token"?}`` at ``$SCALESET_CONFIG``, else ``~/.config/scaleset/config.json``;
4. the defaults below.

A relative ``caFile`` in the config file is relative to the file. The file may
be absent, unless ``SCALESET_CONFIG`` names it. Nothing here talks to the
network; :mod:`scaleset.cli.client` does, from a ``ClientConfig``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

DEFAULT_ENDPOINT: Final = "https://127.0.0.1:8443"
DEFAULT_SUBSCRIPTION: Final = "00000000-0000-0000-0000-000000000000"
DEFAULT_API_VERSION: Final = "2026-04-01"
"""What azure-mgmt-compute 39 sends; the server accepts older Compute versions too."""

ENV_SERVER: Final = "SCALESET_SERVER"
ENV_ENDPOINT: Final = "SCALESET_ENDPOINT"
"""The older name of ``SCALESET_SERVER``, still read after it."""
ENV_TOKEN: Final = "SCALESET_TOKEN"
ENV_CA_FILE: Final = "SCALESET_CA_FILE"
ENV_SUBSCRIPTION: Final = "SCALESET_SUBSCRIPTION"
ENV_CONFIG: Final = "SCALESET_CONFIG"

# config-file key -> ClientConfig field
_FILE_KEYS: Final = {"endpoint": "endpoint", "caFile": "ca_file",
                     "subscription": "subscription", "token": "token"}


class ClientConfigError(Exception):
    """The connection settings are unusable; ``code`` and ``message`` as the CLI prints them."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"({code}) {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ClientConfig:
    """Resolved connection settings (``token`` stays out of ``repr``)."""

    endpoint: str = DEFAULT_ENDPOINT
    subscription: str = DEFAULT_SUBSCRIPTION
    ca_file: str | None = None
    """PEM bundle that verifies the server's certificate (https only); None: system CAs."""
    token: str | None = field(default=None, repr=False)
    config_path: Path | None = None
    """The config file that was read, if any (named in error messages)."""
    api_version: str = DEFAULT_API_VERSION

    def require_token(self) -> str:
        """The bearer token, or an error that says how to get one."""
        if self.token:
            return self.token
        where = f" or add \"token\" to {self.config_path}" if self.config_path else ""
        raise ClientConfigError(
            "MissingToken",
            f"no bearer token: pass --token, set {ENV_TOKEN}{where}. Create a token with "
            "'scaleset token create' (serve prints a first contributor token when it starts).")


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$SCALESET_CONFIG``, else ``~/.config/scaleset/config.json`` (``HOME`` from ``environ``).

    >>> default_config_path({"SCALESET_CONFIG": "/etc/scaleset.json"})
    PosixPath('/etc/scaleset.json')
    >>> default_config_path({"HOME": "/home/ada"})
    PosixPath('/home/ada/.config/scaleset/config.json')
    """
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_CONFIG)
    if explicit:
        return Path(explicit).expanduser()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".config" / "scaleset" / "config.json"


def _read_file(path: Path, *, required: bool) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ClientConfigError(
                "ConfigNotFound", f"{ENV_CONFIG} names {path}, which does not exist; fix "
                f"the path or unset {ENV_CONFIG}") from None
        return {}
    except OSError as exc:
        raise ClientConfigError("ConfigUnreadable",
                                f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClientConfigError("InvalidConfig", f"{path} is not JSON: {exc.msg} at line "
                                f"{exc.lineno}") from exc
    if not isinstance(data, dict):
        raise ClientConfigError("InvalidConfig", f"{path} must hold a JSON object such as "
                                '{"endpoint": "https://127.0.0.1:8443"}')
    out: dict[str, str] = {}
    for key, name in _FILE_KEYS.items():
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ClientConfigError("InvalidConfig",
                                    f"{path}: \"{key}\" must be a string, not {value!r}")
        out[name] = value
    if "ca_file" in out and not Path(out["ca_file"]).expanduser().is_absolute():
        out["ca_file"] = str((path.parent / out["ca_file"]).resolve())
    return out


def _check_endpoint(value: str, source: str) -> str:
    endpoint = value.strip().rstrip("/")
    if not endpoint.lower().startswith(("https://", "http://")):
        raise ClientConfigError(
            "InvalidEndpoint", f"{source} '{value}' is not an http(s) URL; use e.g. "
            f"{DEFAULT_ENDPOINT}")
    return endpoint


def resolve(*, endpoint: str | None = None, token: str | None = None,
            ca_file: str | None = None, subscription: str | None = None,
            environ: Mapping[str, str] | None = None) -> ClientConfig:
    """Flags (the arguments) over environment over config file over defaults.

    >>> resolve(endpoint="https://cp:8443/", environ={"HOME": "/nonexistent"}).endpoint
    'https://cp:8443'
    """
    env = os.environ if environ is None else environ
    path = default_config_path(env)
    from_file = _read_file(path, required=bool(env.get(ENV_CONFIG)))
    flags = {"endpoint": endpoint, "token": token, "ca_file": ca_file,
             "subscription": subscription}
    env_keys = {"endpoint": (ENV_SERVER, ENV_ENDPOINT), "token": (ENV_TOKEN,),
                "ca_file": (ENV_CA_FILE,), "subscription": (ENV_SUBSCRIPTION,)}
    flag_names = {"endpoint": "--server", "token": "--token", "ca_file": "--ca-file",
                  "subscription": "--subscription"}
    chosen: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name, flag in flags.items():
        from_env = next((key for key in env_keys[name] if env.get(key)), None)
        if flag:
            chosen[name], sources[name] = flag, flag_names[name]
        elif from_env is not None:
            chosen[name], sources[name] = env[from_env], from_env
        elif name in from_file:
            chosen[name], sources[name] = from_file[name], f"{path} \"{name}\""
    return ClientConfig(
        endpoint=_check_endpoint(chosen["endpoint"], sources["endpoint"])
        if "endpoint" in chosen else DEFAULT_ENDPOINT,
        subscription=chosen.get("subscription", DEFAULT_SUBSCRIPTION),
        ca_file=str(Path(chosen["ca_file"]).expanduser()) if "ca_file" in chosen else None,
        token=chosen.get("token"),
        config_path=path if from_file else None,
    )


def write_client_config(path: Path, *, endpoint: str, ca_file: str | Path | None,
                        subscription: str, token: str | None = None) -> Path:
    """Write the file the client verbs read (atomically; mode 0600 when it holds a token).

    ``serve`` calls this once it listens, so ``scaleset vmss list`` needs no flags:

    >>> # write_client_config(default_config_path(), endpoint="https://127.0.0.1:8443",
    >>> #                     ca_file=data_dir / "tls" / "ca.pem", subscription=SUB)
    """
    body: dict[str, Any] = {"endpoint": endpoint, "subscription": subscription}
    if ca_file is not None:
        body["caFile"] = str(Path(ca_file).resolve())
    if token is not None:
        body["token"] = token
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file 0600, so a token is never readable by others, not even briefly.
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(body, out, indent=2)
            out.write("\n")
        os.chmod(tmp, 0o600 if token is not None else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

