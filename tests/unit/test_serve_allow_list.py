"""``scaleset serve --auto-upgrade-image`` / ``--auto-upgrade-images``: what the server is
started with (the server itself is replaced by a recorder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from scaleset.catalog.auto_upgrade import DEFAULT_IMAGES, PlatformImage
from scaleset.cli.app import app
from scaleset.server import main
from scaleset.server.settings import ServeSettings


def started_with(monkeypatch: pytest.MonkeyPatch, *args: str, env: dict[str, str] | None = None
                 ) -> tuple[int, str, ServeSettings | None]:
    seen: list[ServeSettings] = []

    def record(settings: ServeSettings, **_: Any) -> None:
        seen.append(settings)

    monkeypatch.setattr(main, "serve", record)
    for name in ("SCALESET_AUTO_UPGRADE_IMAGE", "SCALESET_AUTO_UPGRADE_IMAGES"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["serve", *args], env=env)
    return result.exit_code, result.output, seen[0] if seen else None


def test_the_default_is_azures_list_of_supported_images(monkeypatch: pytest.MonkeyPatch) -> None:
    code, output, settings = started_with(monkeypatch)
    assert code == 0, output
    assert settings is not None and settings.auto_upgrade_images == DEFAULT_IMAGES
    assert PlatformImage("Canonical", "UbuntuServer", "18.04-LTS") in DEFAULT_IMAGES


def test_images_named_on_the_command_line_are_added(monkeypatch: pytest.MonkeyPatch) -> None:
    code, output, settings = started_with(
        monkeypatch, "--auto-upgrade-image", "Contoso:WebApp:demo",
        "--auto-upgrade-image", "canonical:ubuntuserver:18.04-lts")
    assert code == 0, output
    assert settings is not None
    assert settings.auto_upgrade_images == (*DEFAULT_IMAGES,
                                            PlatformImage("Contoso", "WebApp", "demo"))


def test_a_file_replaces_the_list_and_the_environment_works_too(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    listing = tmp_path / "images.json"
    listing.write_text(json.dumps([{"publisher": "Contoso", "offer": "WebApp", "sku": "1"}]))
    code, output, settings = started_with(monkeypatch, env={
        "SCALESET_AUTO_UPGRADE_IMAGES": str(listing),
        "SCALESET_AUTO_UPGRADE_IMAGE": "Contoso:WebApp:2 Contoso:WebApp:3"})
    assert code == 0, output
    assert settings is not None
    assert [str(i) for i in settings.auto_upgrade_images] == [
        "Contoso/WebApp/1", "Contoso/WebApp/2", "Contoso/WebApp/3"]


@pytest.mark.parametrize(("args", "needle"), [
    (("--auto-upgrade-image", "Contoso:WebApp"), "PUBLISHER:OFFER:SKU"),
    (("--auto-upgrade-images", "/nonexistent/images.json"), "images.json"),
])
def test_a_bad_allow_list_stops_serve_with_the_fix(monkeypatch: pytest.MonkeyPatch,
                                                   args: tuple[str, ...], needle: str) -> None:
    code, output, settings = started_with(monkeypatch, *args)
    assert code != 0 and settings is None
    assert needle in output
