"""Where the client verbs connect, and with which token: one resolved ``ClientConfig``.

Each setting is resolved on its own, first match wins:

1. a flag (``--server``/``--endpoint``, ``--token``, ``--ca-file``, ``--subscription``;
   declared once, in :mod:`scaleset.cli.connection`);
2. the environment (``SCALESET_SERVER`` or its older name ``SCALESET_ENDPOINT``,
   ``SCALESET_TOKEN``, ``SCALESET_CA_FILE``, ``SCALESET_SUBSCRIPTION``; an empty
   variable counts as unset);
3. one profile of the config file ``serve`` writes (``$SCALESET_CONFIG``, else
   ``~/.config/scaleset/config.json``)::

       {"current": "127.0.0.1:8443",
        "profiles": {"127.0.0.1:8443": {"endpoint", "caFile", "subscription", "token"?}}}

   The profile is ``--profile`` / ``SCALESET_PROFILE`` (it must exist); else the
   one whose endpoint is the server given by flag or environment (one profile per
   server, so its token and CA come along); else ``current``, the server ``serve``
   last wrote. A file in the first format (those keys at the top level) reads as
   one profile and is rewritten in this shape the next time ``serve`` writes it;
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
ENV_PROFILE: Final = "SCALESET_PROFILE"

# config-file key -> ClientConfig field
_FILE_KEYS: Final = {"endpoint": "endpoint", "caFile": "ca_file",
                     "subscription": "subscription", "token": "token"}


class ClientConfigError(Exception):
    """The connection settings are unusable; ``code`` and ``message`` as the CLI prints them."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"({code}) {message}")
        self.code = code
        self.message = message

    def describe(self) -> str:
        """What the CLI prints on stderr: ``error (Code): message``."""
        return f"error ({self.code}): {self.message}"


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
    profile: str | None = None
    """The config file's profile the settings came from, if any."""

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


def _read_document(path: Path, *, required: bool) -> dict[str, Any]:
    """The file as JSON (empty when absent), in the current shape (see :func:`migrate`)."""
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
                                '{"profiles": {"local": {"endpoint": "https://127.0.0.1:8443"}}}')
    document = migrate(data)
    if not isinstance(document.get("profiles"), dict) or not all(
            isinstance(v, dict) for v in document["profiles"].values()):
        raise ClientConfigError("InvalidConfig",
                                f"{path}: \"profiles\" must map names to objects")
    return document


def profile_name(endpoint: str) -> str:
    """The name ``serve`` gives a new profile: its server's host and port.

    >>> profile_name("https://127.0.0.1:8443/")
    '127.0.0.1:8443'
    """
    return endpoint.split("://", 1)[-1].strip("/")


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A config document in the current shape ``{"current", "profiles": {name: {...}}}``.

    The first format held one server's settings at the top level; it becomes one
    profile, named after its server, and the current one:

    >>> migrate({"endpoint": "https://cp:8443", "token": "t"})
    {'current': 'cp:8443', 'profiles': {'cp:8443': {'endpoint': 'https://cp:8443', 'token': 't'}}}
    """
    if "profiles" in data or not any(key in data for key in _FILE_KEYS):
        return {"current": data.get("current"), "profiles": data.get("profiles") or {}}
    old = {key: data[key] for key in _FILE_KEYS if key in data}
    name = profile_name(str(old.get("endpoint") or DEFAULT_ENDPOINT))
    return {"current": name, "profiles": {name: old}}


def _profile_fields(path: Path, name: str, raw: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, attr in _FILE_KEYS.items():
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ClientConfigError("InvalidConfig", f"{path}: profile '{name}': \"{key}\" "
                                    f"must be a string, not {value!r}")
        out[attr] = value
    if "ca_file" in out and not Path(out["ca_file"]).expanduser().is_absolute():
        out["ca_file"] = str((path.parent / out["ca_file"]).resolve())
    return out


def _same_server(a: str, b: str) -> bool:
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def _choose_profile(document: dict[str, Any], *, wanted: str | None, server: str | None,
                    path: Path, source: str) -> str | None:
    """``wanted`` (it must exist); else the profile of ``server``; else the current one."""
    found: dict[str, Any] = document["profiles"]
    if wanted:
        if wanted not in found:
            names = ", ".join(sorted(found)) or "none"
            raise ClientConfigError(
                "ProfileNotFound", f"{source} names profile '{wanted}', which {path} does not "
                f"have (profiles: {names}); 'scaleset serve' adds its own")
        return wanted
    if server:
        # One profile per server: naming the server picks its token and CA too.
        return next((n for n, p in found.items()
                     if isinstance(p.get("endpoint"), str) and _same_server(p["endpoint"], server)),
                    None)
    current = document.get("current")
    return current if isinstance(current, str) and current in found else None


def _check_endpoint(value: str, source: str) -> str:
    endpoint = value.strip().rstrip("/")
    if not endpoint.lower().startswith(("https://", "http://")):
        raise ClientConfigError(
            "InvalidEndpoint", f"{source} '{value}' is not an http(s) URL; use e.g. "
            f"{DEFAULT_ENDPOINT}")
    return endpoint


def resolve(*, endpoint: str | None = None, token: str | None = None,
            ca_file: str | None = None, subscription: str | None = None,
            profile: str | None = None,
            environ: Mapping[str, str] | None = None) -> ClientConfig:
    """Flags (the arguments) over environment over the chosen profile over defaults.

    >>> resolve(endpoint="https://cp:8443/", environ={"HOME": "/nonexistent"}).endpoint
    'https://cp:8443'
    """
    env = os.environ if environ is None else environ
    path = default_config_path(env)
    document = _read_document(path, required=bool(env.get(ENV_CONFIG)))
    flags = {"endpoint": endpoint, "token": token, "ca_file": ca_file,
             "subscription": subscription}
    env_keys = {"endpoint": (ENV_SERVER, ENV_ENDPOINT), "token": (ENV_TOKEN,),
                "ca_file": (ENV_CA_FILE,), "subscription": (ENV_SUBSCRIPTION,)}
    flag_names = {"endpoint": "--server", "token": "--token", "ca_file": "--ca-file",
                  "subscription": "--subscription"}
    server = endpoint or next((env[k] for k in env_keys["endpoint"] if env.get(k)), None)
    chosen_profile = None
    if document:
        chosen_profile = _choose_profile(
            document, wanted=profile or env.get(ENV_PROFILE) or None, server=server, path=path,
            source="--profile" if profile else ENV_PROFILE)
    elif profile or env.get(ENV_PROFILE):
        raise ClientConfigError(
            "ProfileNotFound", f"{'--profile' if profile else ENV_PROFILE} names profile "
            f"'{profile or env.get(ENV_PROFILE)}', but there is no client config at {path}; "
            "'scaleset serve' writes one")
    from_file = (_profile_fields(path, chosen_profile, document["profiles"][chosen_profile])
                 if chosen_profile else {})
    chosen: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name, flag in flags.items():
        from_env = next((key for key in env_keys[name] if env.get(key)), None)
        if flag:
            chosen[name], sources[name] = flag, flag_names[name]
        elif from_env is not None:
            chosen[name], sources[name] = env[from_env], from_env
        elif name in from_file:
            chosen[name], sources[name] = (from_file[name],
                                           f"{path} profile '{chosen_profile}' \"{name}\"")
    return ClientConfig(
        endpoint=_check_endpoint(chosen["endpoint"], sources["endpoint"])
        if "endpoint" in chosen else DEFAULT_ENDPOINT,
        subscription=chosen.get("subscription", DEFAULT_SUBSCRIPTION),
        ca_file=str(Path(chosen["ca_file"]).expanduser()) if "ca_file" in chosen else None,
        token=chosen.get("token"),
        config_path=path if document else None,
        profile=chosen_profile,
    )


def write_client_config(path: Path, *, endpoint: str, ca_file: str | Path | None,
                        subscription: str, token: str | None = None,
                        profile: str | None = None) -> Path:
    """Add or update one server's profile and make it current; leave every other alone.

    ``serve`` calls this once it listens, so ``scaleset vmss list`` needs no flags:

    >>> # write_client_config(default_config_path(), endpoint="https://127.0.0.1:8443",
    >>> #                     ca_file=data_dir / "tls" / "ca.pem", subscription=SUB)

    The profile is ``profile`` if given, else the one already naming ``endpoint``, else
    a new one named :func:`profile_name`. ``token`` None keeps the profile's token:
    a restarted server prints no new token, and the one it printed first still works.
    A file in the first format is rewritten in the current one. Written atomically,
    mode 0600.
    """
    document = _read_document(path, required=False)
    found: dict[str, Any] = document.get("profiles") or {}
    name = profile or next(
        (n for n, p in found.items()
         if isinstance(p, dict) and isinstance(p.get("endpoint"), str)
         and _same_server(p["endpoint"], endpoint)), None) or profile_name(endpoint)
    entry: dict[str, Any] = dict(found.get(name) or {})
    entry.update({"endpoint": endpoint, "subscription": subscription})
    if ca_file is not None:
        entry["caFile"] = str(Path(ca_file).resolve())
    else:
        entry.pop("caFile", None)
    if token is not None:
        entry["token"] = token
    profiles = {**found, name: entry}
    body = {"current": name, "profiles": profiles}
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file 0600, so a token is never readable by others, not even briefly.
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(body, out, indent=2)
            out.write("\n")
        os.chmod(tmp, 0o600)  # a token may be added later by hand: private in any case
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
