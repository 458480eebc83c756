"""Which fields of a stored scale-set model are secrets, and sealing them with a cipher.

The store sits below ``security`` in the layer map, so it knows only the
``FieldCipher`` protocol; ``security.secrets.Keyring`` is the implementation the
server injects (``open_store(url, cipher=...)``). A store without a cipher keeps
models as they are (tests, tools that never see secrets).

Sealed fields: ``osProfile.adminPassword``, ``osProfile.customData`` and every
extension's ``protectedSettings`` (an object: sealed as its JSON text). Each is
bound to its scale set and field, so a sealed value moved elsewhere does not
open. A value stored before sealing began reads as it is and is sealed at the
row's next write.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Protocol

SECRET_OS_PROFILE_KEYS = ("adminPassword", "customData")
SECRET_EXTENSION_KEYS = ("protectedSettings",)


class FieldCipher(Protocol):
    """Seals and opens secret values, and keys digests (implemented in ``security``)."""

    def seal(self, plaintext: str, *, context: str) -> str:
        """``plaintext`` sealed for the field ``context`` names."""
        ...

    def unseal(self, value: str, *, context: str) -> str:
        """The clear text of a sealed ``value`` (a value never sealed is returned as is)."""
        ...

    def digest(self, data: str) -> str:
        """A keyed digest of ``data`` (hex), for lookups that must not store the value."""
        ...


def secret_fields(body: dict[str, Any], scale_set_id: str
                   ) -> list[tuple[dict[str, Any], str, str]]:
    """``(container, key, context)`` of every secret present in a model's JSON."""
    found: list[tuple[dict[str, Any], str, str]] = []
    profile = (body.get("properties") or {}).get("virtualMachineProfile") or {}
    os_profile = profile.get("osProfile")
    if isinstance(os_profile, dict):
        for key in SECRET_OS_PROFILE_KEYS:
            if os_profile.get(key) is not None:
                found.append((os_profile, key, f"{scale_set_id}|osProfile.{key}"))
    extensions = (profile.get("extensionProfile") or {}).get("extensions") or []
    for index, extension in enumerate(extensions):
        props = extension.get("properties") if isinstance(extension, dict) else None
        if not isinstance(props, dict):
            continue
        name = extension.get("name") or f"#{index}"
        for key in SECRET_EXTENSION_KEYS:
            if props.get(key) is not None:
                found.append((props, key, f"{scale_set_id}|extensions/{name}.{key}"))
    return found


def seal_model(body: dict[str, Any], cipher: FieldCipher | None,
               scale_set_id: str) -> dict[str, Any]:
    """A copy of a model's JSON with its secrets sealed (``body`` itself unchanged)."""
    if cipher is None or not secret_fields(body, scale_set_id):
        return body
    sealed = copy.deepcopy(body)
    for container, key, context in secret_fields(sealed, scale_set_id):
        value = container[key]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        container[key] = cipher.seal(text, context=context)
    return sealed


def unseal_model(body: dict[str, Any], cipher: FieldCipher | None,
                 scale_set_id: str) -> dict[str, Any]:
    """A copy of a stored model's JSON with its secrets in clear."""
    if cipher is None or not secret_fields(body, scale_set_id):
        return body  # nothing to open: no copy (this runs on every read of a scale set)
    clear = copy.deepcopy(body)
    for container, key, context in secret_fields(clear, scale_set_id):
        value = container[key]
        if not isinstance(value, str):
            continue  # an object in clear: stored before sealing began
        text = cipher.unseal(value, context=context)
        # protectedSettings is an object: a string there is its sealed JSON text.
        container[key] = json.loads(text) if key in SECRET_EXTENSION_KEYS else text
    return clear
