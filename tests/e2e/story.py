"""Whole-story checks shared by the client stories: a write changes what it names, nothing else.

After every write a story GETs the scale set and compares that body with the GET before
the write: ``unexpected_changes`` lists every difference except the fields the write named
and the read-only fields that move on every write (``MOVING``). Paths are dotted, list
items by index: ``properties.virtualMachineProfile.extensionProfile.extensions.0.name``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.server import Server

MOVING = ("etag", "properties.provisioningState")
"""Read-only fields a write legitimately moves. ``provisioningState`` is checked on its own
(``settled``); ``timeCreated`` and ``uniqueId`` are not here: they must never move."""

ANY = object()
"""An expected value meaning: the write names this field, any value will do."""

ABSENT = object()
"""An expected value meaning: the write removes this field."""

CHANGED = object()
"""An expected value meaning: the write must give this field a new value (a new disk name)."""

CHANGED_JSON = {"$changed": True}
"""How a story written in another language says ``CHANGED`` (see ``from_json``)."""


class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


MISSING: Any = _Missing()


def _same(a: Any, b: Any) -> bool:
    """JSON equality that tells true from 1 and 1 from 1.0 (Python's == does not)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _walk(a: Any, b: Any, path: tuple[str | int, ...],
          out: list[tuple[tuple[str | int, ...], Any, Any]]) -> None:
    # An object that appears or disappears is compared key by key with an empty one, so a
    # write naming a.b.c may create a and a.b without a's appearance counting as a change.
    if isinstance(a, dict) or isinstance(b, dict):
        if (isinstance(a, dict) or a is MISSING) and (isinstance(b, dict) or b is MISSING):
            left = a if isinstance(a, dict) else {}
            right = b if isinstance(b, dict) else {}
            for key in sorted(set(left) | set(right)):
                _walk(left.get(key, MISSING), right.get(key, MISSING), (*path, key), out)
            return
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _walk(x, y, (*path, i), out)
        return
    if not _same(a, b):
        out.append((path, a, b))


def dotted(path: Iterable[str | int]) -> str:
    """``("a", 0, "b")`` → ``"a.0.b"``."""
    return ".".join(str(p) for p in path)


def changes(before: Any, after: Any) -> list[tuple[str, Any, Any]]:
    """Every leaf that differs between two JSON bodies: (dotted path, before, after)."""
    out: list[tuple[tuple[str | int, ...], Any, Any]] = []
    _walk(before, after, (), out)
    return [(dotted(p), a, b) for p, a, b in out]


def _covered(path: str, names: Iterable[str]) -> bool:
    return any(path == n or path.startswith(n + ".") for n in names)


def _at(body: Any, path: str) -> Any:
    node = body
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part, MISSING)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def unexpected_changes(before: Mapping[str, Any], after: Mapping[str, Any],
                       expect: Mapping[str, Any], *, settled: bool = True) -> list[str]:
    """What is wrong with ``after``, one line each (empty when nothing is).

    ``expect`` maps each field the write named to the value GET must now show (``ANY``:
    any value; ``CHANGED``: any other value than before; ``ABSENT``: gone). Every other
    difference from ``before`` is listed, except ``MOVING``; ``settled`` also requires
    ``provisioningState`` Succeeded (the write's operation has ended, so the resource is no
    longer Updating).
    """
    problems = []
    for path, wanted in expect.items():
        got = _at(after, path)
        if wanted is ANY:
            continue
        if wanted is CHANGED:
            if _same(got, _at(before, path)):
                problems.append(f"{path}: expected a new value, GET still shows {got!r}")
            continue
        if wanted is ABSENT:
            if got is not MISSING:
                problems.append(f"{path}: expected absent, GET shows {got!r}")
        elif not _same(got, wanted):
            problems.append(f"{path}: expected {wanted!r}, GET shows {got!r}")
    for path, old, new in changes(before, after):
        if not _covered(path, (*expect, *MOVING)):
            problems.append(f"{path}: changed from {old!r} to {new!r}, but the write "
                            "did not name it")
    if settled:
        state = _at(after, "properties.provisioningState")
        if state != "Succeeded":
            problems.append(f"properties.provisioningState: {state!r} after the operation "
                            "ended (expected 'Succeeded')")
    return problems


def from_json(expect: Mapping[str, Any]) -> dict[str, Any]:
    """``expect`` as a JSON story prints it: ``{"$changed": true}`` stands for ``CHANGED``."""
    return {path: CHANGED if _same(value, CHANGED_JSON) else value
            for path, value in expect.items()}


def assert_only_changed(step: str, before: Mapping[str, Any], after: Mapping[str, Any],
                        expect: Mapping[str, Any], *, settled: bool = True) -> None:
    """Fail naming ``step`` and every problem ``unexpected_changes`` finds."""
    problems = unexpected_changes(before, after, expect, settled=settled)
    assert not problems, f"the GET after {step!r} differs from what the write asked:\n  " \
        + "\n  ".join(problems)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Name the story's step in whatever fails inside it (the cause stays chained)."""
    try:
        yield
    except Exception as error:
        raise AssertionError(f"step {name!r} failed: {type(error).__name__}: {error}") \
            from error


@dataclass(frozen=True)
class ServicePrincipal:
    app_id: str
    password: str
    tenant: str


def create_service_principal(server: Server, name: str) -> ServicePrincipal:
    """``scaleset sp create`` against ``server``, as an operator signs a client in."""
    scaleset = Path(sys.executable).with_name("scaleset")
    env = {**os.environ, "SCALESET_CONFIG": str(server.data_dir / "client-config.json")}
    done = subprocess.run(
        [str(scaleset), "sp", "create", "--name", name, "--server", server.endpoint,
         "--token", server.token, "--ca-file", str(server.ca)],
        capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, f"scaleset sp create failed:\n{done.stdout}{done.stderr}"
    created = json.loads(done.stdout)
    return ServicePrincipal(created["appId"], created["password"], created["tenant"])
