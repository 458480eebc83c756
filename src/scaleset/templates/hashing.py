"""ARM's deterministic hashes: ``uniqueString``, ``guid`` and the template hash.

``uniqueString(a, b, …)``: the arguments joined with ``-``, UTF-8 encoded, hashed
with the 64-bit MurmurHash variant of Microsoft.WindowsAzure.ResourceStack
(``Algorithms.ComputeHash``: two 32-bit Murmur3 lanes with the x86_128
constants), then 13 base-32 characters ``a-z2-7`` taken five bits at a time
from the top. Checked against published values: ``uniqueString('hello',
'world')`` is ``a7wkljktk6wne`` (hash 571013382255652050) and
``uniqueString('tyeth')`` is ``zcztcwvu6iyg6``.

``guid(a, b, …)``: a name-based (version 5, SHA-1) UUID of the arguments joined
with ``-``, in ARM's namespace ``11fb06fb-712d-4ddd-98c7-e71bbd588830``.

The template hash (``properties.templateHash`` of a deployment) is the same
MurmurHash of the minified, upper-cased template, as a decimal number.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

_M32: Final = 0xFFFFFFFF
_C1: Final = 0x239B961B
_C2: Final = 0xAB0E9789
_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz234567"
GUID_NAMESPACE: Final = uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830")


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _fmix(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def murmur64(data: bytes, seed: int = 0) -> int:
    """ResourceStack's 64-bit MurmurHash of ``data``.

    >>> murmur64(b"hello-world")
    571013382255652050
    """
    h1 = h2 = seed
    n = len(data)
    i = 0
    while i + 8 <= n:
        k1 = int.from_bytes(data[i:i + 4], "little")
        k2 = int.from_bytes(data[i + 4:i + 8], "little")
        h1 ^= (_rotl((k1 * _C1) & _M32, 15) * _C2) & _M32
        h1 = (((_rotl(h1, 19) + h2) & _M32) * 5 + 0x561CCD1B) & _M32
        h2 ^= (_rotl((k2 * _C2) & _M32, 17) * _C1) & _M32
        h2 = (((_rotl(h2, 13) + h1) & _M32) * 5 + 0x0BCAA747) & _M32
        i += 8
    tail = n - i
    if tail > 0:
        k1 = int.from_bytes(data[i:i + min(tail, 4)], "little")
        h1 ^= (_rotl((k1 * _C1) & _M32, 15) * _C2) & _M32
        if tail > 4:
            k2 = int.from_bytes(data[i + 4:n], "little")
            h2 ^= (_rotl((k2 * _C2) & _M32, 17) * _C1) & _M32
    h1 ^= n & _M32
    h2 ^= n & _M32
    h1 = (h1 + h2) & _M32
    h2 = (h2 + h1) & _M32
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & _M32
    h2 = (h2 + h1) & _M32
    return (h2 << 32) | h1


def unique_string(values: Sequence[str]) -> str:
    """ARM's ``uniqueString``: 13 characters, the same for the same arguments.

    >>> unique_string(["hello", "world"])
    'a7wkljktk6wne'
    >>> unique_string(["tyeth"])
    'zcztcwvu6iyg6'
    """
    value = murmur64("-".join(values).encode("utf-8"))
    out = []
    for _ in range(13):
        out.append(_ALPHABET[value >> 59])
        value = (value << 5) & 0xFFFFFFFFFFFFFFFF
    return "".join(out)


def guid(values: Sequence[str]) -> str:
    """ARM's ``guid``: a version-5 UUID of the arguments in ARM's namespace.

    >>> guid(["a", "b"]) == str(uuid.uuid5(GUID_NAMESPACE, "a-b"))
    True
    """
    return str(uuid.uuid5(GUID_NAMESPACE, "-".join(values)))


def template_hash(template: Mapping[str, Any]) -> str:
    """The deployment's ``templateHash``: the hash of the minified, upper-cased template."""
    text = json.dumps(template, separators=(",", ":"), ensure_ascii=False).upper()
    return str(murmur64(text.encode("utf-8")))
