"""Which platform images support automatic OS upgrade: the allow-list (pure).

Azure supports automatic OS upgrade only for the platform images of a
published table (the seed's "Supported OS images"); this module holds that
table with the publisher ids ARM uses, and the rules to match, parse and
describe an allow-list. Matching is case-insensitive, as ARM names are.

The control plane's list is a setting (``ShellSettings.auto_upgrade_images``,
set by ``scaleset serve --auto-upgrade-image`` / ``--auto-upgrade-images``);
gallery images are not on it: any gallery image may be upgraded automatically.

>>> allows(DEFAULT_IMAGES, "canonical", "UBUNTUSERVER", "18.04-lts")
True
>>> allows(DEFAULT_IMAGES, "Contoso", "WebApp", "demo")
False
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final


class AllowListError(ValueError):
    """An allow-list entry or file that cannot be read; the message says what to write."""


@dataclass(frozen=True, slots=True)
class PlatformImage:
    """One ``publisher/offer/sku`` (all of its versions)."""

    publisher: str
    offer: str
    sku: str

    def __repr__(self) -> str:
        return f"PlatformImage({self.publisher!r}, {self.offer!r}, {self.sku!r})"

    def __str__(self) -> str:
        return f"{self.publisher}/{self.offer}/{self.sku}"

    @property
    def key(self) -> tuple[str, str, str]:
        """The case-insensitive identity of the image."""
        return self.publisher.lower(), self.offer.lower(), self.sku.lower()

    def matches(self, publisher: str, offer: str, sku: str) -> bool:
        """Whether ``publisher/offer/sku`` is this image (case-insensitively)."""
        return self.key == (publisher.lower(), offer.lower(), sku.lower())


def _images(publisher: str, offer: str, *skus: str) -> tuple[PlatformImage, ...]:
    return tuple(PlatformImage(publisher, offer, sku) for sku in skus)


DEFAULT_IMAGES: Final[tuple[PlatformImage, ...]] = (
    *_images("Canonical", "UbuntuServer", "16.04-LTS", "18.04-LTS"),
    *_images("OpenLogic", "CentOS", "7.5"),
    *_images("CoreOS", "CoreOS", "Stable"),
    *_images("MicrosoftWindowsServer", "WindowsServer",
             "2012-R2-Datacenter", "2016-Datacenter", "2016-Datacenter-Smalldisk",
             "2016-Datacenter-with-Containers", "2019-Datacenter", "2019-Datacenter-Smalldisk",
             "2019-Datacenter-with-Containers", "Datacenter-Core-1903-with-Containers-smalldisk"),
)
"""The seed's table of supported images (Azure's list when automatic OS upgrade shipped)."""


def allows(images: Iterable[PlatformImage], publisher: str, offer: str, sku: str) -> bool:
    """Whether ``publisher/offer/sku`` is on the allow-list ``images``."""
    return any(image.matches(publisher, offer, sku) for image in images)


def merged(*lists: Iterable[PlatformImage]) -> tuple[PlatformImage, ...]:
    """The lists joined in order, each image once (the first spelling wins).

    >>> merged(DEFAULT_IMAGES[:1], [PlatformImage("CANONICAL", "ubuntuserver", "16.04-lts")])
    (PlatformImage('Canonical', 'UbuntuServer', '16.04-LTS'),)
    """
    seen: dict[tuple[str, str, str], PlatformImage] = {}
    for images in lists:
        for image in images:
            seen.setdefault(image.key, image)
    return tuple(seen.values())


def describe(images: Iterable[PlatformImage]) -> str:
    """The allow-list as a reader wants it in an error message.

    >>> describe(DEFAULT_IMAGES[:3])
    'Canonical/UbuntuServer/16.04-LTS, Canonical/UbuntuServer/18.04-LTS, OpenLogic/CentOS/7.5'
    """
    return ", ".join(str(image) for image in images) or "(none)"


def parse_urn(text: str) -> PlatformImage:
    """``PUBLISHER:OFFER:SKU`` (as ``az vm image`` writes a URN, without the version).

    >>> parse_urn("Contoso:WebApp:demo")
    PlatformImage('Contoso', 'WebApp', 'demo')
    """
    parts = [p.strip() for p in text.split(":")]
    if len(parts) != 3 or not all(parts):
        raise AllowListError(f"'{text}' is not PUBLISHER:OFFER:SKU, e.g. "
                             "'Canonical:UbuntuServer:18.04-LTS'")
    return PlatformImage(*parts)


def parse_json(text: str) -> tuple[PlatformImage, ...]:
    """A JSON list of ``{"publisher", "offer", "sku"}`` objects.

    >>> parse_json('[{"publisher": "Contoso", "offer": "WebApp", "sku": "demo"}]')
    (PlatformImage('Contoso', 'WebApp', 'demo'),)
    """
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AllowListError(f"the allow-list is not JSON ({exc}); write a list of "
                             '{"publisher": ..., "offer": ..., "sku": ...} objects') from exc
    if not isinstance(data, list):
        raise AllowListError('the allow-list must be a JSON list of {"publisher": ..., '
                             '"offer": ..., "sku": ...} objects')
    out = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not all(
                isinstance(item.get(k), str) and item[k].strip()
                for k in ("publisher", "offer", "sku")):
            raise AllowListError(f"allow-list entry [{index}] must be an object with non-empty "
                                 'string "publisher", "offer" and "sku"; got '
                                 f"{json.dumps(item)}")
        out.append(PlatformImage(item["publisher"].strip(), item["offer"].strip(),
                                 item["sku"].strip()))
    return merged(out)
