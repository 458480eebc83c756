"""pyproject.toml declares its license the way setuptools no longer warns about."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _load() -> dict[str, object]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def test_license_is_an_spdx_expression_not_a_table_or_classifier() -> None:
    data = _load()
    project = data["project"]
    assert isinstance(project, dict)
    assert isinstance(project["license"], str)
    assert re.fullmatch(r"[A-Za-z0-9.+-]+(?: (?:AND|OR|WITH) [A-Za-z0-9.+-]+)*",
                        project["license"])
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))


def test_build_backend_understands_spdx_license_strings() -> None:
    # setuptools reads `license = "..."` from 77.0 on; older ones reject it.
    requires = _load()["build-system"]
    assert isinstance(requires, dict)
    setuptools = [r for r in requires["requires"] if r.startswith("setuptools")]
    match = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", setuptools[0].split()[0])
    assert match is not None and int(match.group(1)) >= 77
