"""``image.json``: the manifest at the top of every image version.

An image version is a tree whose top level holds ``image.json``::

    {"osType": "Linux", "entrypoint": ["python3", "app.py"],
     "version": "1.1.0", "description": "..."}

``entrypoint`` is the argv started with the OS disk as working directory. Keys
scaleset does not know are kept, so an image can carry its own settings.
Loading a bad manifest raises ``ArtifactError`` naming the field and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from scaleset.artifacts.errors import ArtifactError
from scaleset.model.base import ArmModel

MANIFEST_NAME = "image.json"

# How to fix each field, shown after pydantic's own account of what is wrong.
_FIXES = {
    "osType": 'set "osType" to "Linux" or "Windows"',
    "entrypoint": 'set "entrypoint" to the command to start, as a list of strings, '
    'e.g. ["python3", "app.py"]',
    "version": 'set "version" to a string such as "1.1.0", or leave it out',
    "description": 'set "description" to a string, or leave it out',
}


class ImageManifest(ArmModel):
    """The parsed ``image.json`` (camelCase on the wire, snake_case here)."""

    os_type: Literal["Linux", "Windows"]
    entrypoint: list[str] = Field(min_length=1)
    version: str | None = None
    description: str | None = None

    @field_validator("entrypoint")
    @classmethod
    def _program_is_named(cls, argv: list[str]) -> list[str]:
        # Later arguments may legitimately be empty strings; the program may not.
        if argv and not argv[0].strip():
            raise ValueError("the first element must name the program to run")
        return argv


def parse_manifest(raw: bytes) -> ImageManifest:
    """Parse the bytes of an ``image.json``; raise ``ArtifactError`` naming what is wrong."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ArtifactError(
            f"{MANIFEST_NAME} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "save it as UTF-8 JSON", entry=MANIFEST_NAME) from exc
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"{MANIFEST_NAME} is not valid JSON: {exc.msg} at line {exc.lineno} column "
            f"{exc.colno}; fix the JSON syntax", entry=MANIFEST_NAME) from exc
    if not isinstance(data, dict):
        raise ArtifactError(
            f"{MANIFEST_NAME} must hold a JSON object, not {type(data).__name__}; "
            'write {"osType": "Linux", "entrypoint": [...]}', entry=MANIFEST_NAME)
    try:
        return ImageManifest.model_validate(data)
    except ValidationError as exc:
        raise _manifest_error(exc) from exc


def load_manifest(tree: Path) -> ImageManifest:
    """Load and validate ``image.json`` at the top of an image tree."""
    path = tree / MANIFEST_NAME
    if not path.is_file():
        what = "is missing" if not path.exists() and not path.is_symlink() else "is not a file"
        raise ArtifactError(
            f"{MANIFEST_NAME} {what} at the top of the image; an image version needs a "
            f'manifest {MANIFEST_NAME} such as {{"osType": "Linux", "entrypoint": '
            '["python3", "app.py"]} beside its files', entry=MANIFEST_NAME)
    return parse_manifest(path.read_bytes())


def _manifest_error(exc: ValidationError) -> ArtifactError:
    problems = []
    fields = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        top = str(error["loc"][0]) if error["loc"] else ""
        fields.append(top)
        fix = _FIXES.get(top, "fix or remove it")
        problems.append(f'"{field}": {error["msg"]}; {fix}')
    return ArtifactError(f"{MANIFEST_NAME} is invalid: " + " | ".join(problems),
                         entry=MANIFEST_NAME, target=fields[0] if fields else None)
