"""Galleries, gallery image definitions and image versions (``Microsoft.Compute/galleries``).

What a client PUTs, typed where scaleset interprets it and kept as-is
elsewhere (see :class:`~scaleset.model.base.ArmModel`). Read-only fields a
client sends back after a GET (``provisioningState``, ``publishedDate``,
``replicationStatus``) are accepted and ignored: the server owns them.

>>> v = GalleryImageVersion.model_validate({"location": "westus", "properties": {
...     "publishingProfile": {"targetRegions": [{"name": "East US", "excludeFromLatest": True}],
...                           "endOfLifeDate": "2027-01-01T00:00:00Z"}}})
>>> region = v.properties.publishing_profile.target_regions[0]
>>> region.name, region.exclude_from_latest, v.properties.publishing_profile.replica_count
('East US', True, 1)
>>> GalleryImage.model_validate({"location": "westus", "properties": {
...     "osType": "linux", "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}
... ).properties.os_type
'Linux'
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from scaleset.model import limits
from scaleset.model.base import ArmModel

OsType = Literal["Linux", "Windows"]
OsState = Literal["Generalized", "Specialized"]
StorageAccountType = Literal["Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS"]

OS_TYPES: Final[dict[str, OsType]] = {"linux": "Linux", "windows": "Windows"}
OS_STATES: Final[dict[str, OsState]] = {"generalized": "Generalized",
                                        "specialized": "Specialized"}
STORAGE_ACCOUNT_TYPES: Final[dict[str, StorageAccountType]] = {
    t.lower(): t for t in ("Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS")}
READ_ONLY: Final = ("provisioningState", "replicationStatus")


def _canonical(value: Any, choices: Mapping[str, str], what: str) -> Any:
    """``value`` spelled as ``choices`` spell it (input is case-insensitive)."""
    if isinstance(value, str) and value.lower() in choices:
        return choices[value.lower()]
    raise PydanticCustomError(
        "enum", "'{value}' is not a valid {what}; use one of {choices}",
        {"value": str(value), "what": what, "choices": ", ".join(choices.values())})


class Gallery(ArmModel):
    """A gallery: a container of image definitions in one region."""

    location: str = Field(min_length=1)
    tags: limits.Tags = None
    properties: dict[str, Any] = Field(default_factory=dict)


class GalleryImageIdentifier(ArmModel):
    publisher: str = Field(min_length=1)
    offer: str = Field(min_length=1)
    sku: str = Field(min_length=1)


class GalleryImageProperties(ArmModel):
    os_type: OsType
    os_state: OsState = "Generalized"
    identifier: GalleryImageIdentifier
    description: str | None = None
    provisioning_state: str | None = Field(default=None, exclude=True)

    @field_validator("os_type", mode="before")
    @classmethod
    def _os_type(cls, value: Any) -> Any:
        return _canonical(value, OS_TYPES, "osType")

    @field_validator("os_state", mode="before")
    @classmethod
    def _os_state(cls, value: Any) -> Any:
        return _canonical(value, OS_STATES, "osState")


class GalleryImage(ArmModel):
    """An image definition: what every version of one image has in common."""

    location: str = Field(min_length=1)
    tags: limits.Tags = None
    properties: GalleryImageProperties


class TargetRegion(ArmModel):
    name: str = Field(min_length=1)
    regional_replica_count: int | None = Field(default=None, ge=1, le=100)
    storage_account_type: StorageAccountType | None = None
    exclude_from_latest: bool = False

    @field_validator("storage_account_type", mode="before")
    @classmethod
    def _storage(cls, value: Any) -> Any:
        return None if value is None else _canonical(value, STORAGE_ACCOUNT_TYPES,
                                                     "storageAccountType")


class PublishingProfile(ArmModel):
    target_regions: list[TargetRegion] = Field(default_factory=list)
    replica_count: int = Field(default=1, ge=1, le=100)
    exclude_from_latest: bool = False
    end_of_life_date: datetime | None = None
    storage_account_type: StorageAccountType = "Standard_LRS"
    published_date: str | None = Field(default=None, exclude=True)

    @field_validator("storage_account_type", mode="before")
    @classmethod
    def _storage(cls, value: Any) -> Any:
        return _canonical(value, STORAGE_ACCOUNT_TYPES, "storageAccountType")

    @field_validator("end_of_life_date", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:  # ARM reads a bare date-time as UTC
            return value.replace(tzinfo=UTC)
        return value


class GalleryImageVersionProperties(ArmModel):
    publishing_profile: PublishingProfile = Field(default_factory=PublishingProfile)
    storage_profile: dict[str, Any] = Field(default_factory=dict)
    provisioning_state: str | None = Field(default=None, exclude=True)
    replication_status: dict[str, Any] | None = Field(default=None, exclude=True)


class GalleryImageVersion(ArmModel):
    """An image version: immutable files, published to target regions."""

    location: str = Field(min_length=1)
    tags: limits.Tags = None
    properties: GalleryImageVersionProperties = Field(
        default_factory=GalleryImageVersionProperties)
