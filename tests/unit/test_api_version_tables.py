"""The api-version tables: each in calendar order, without repeats, and the old Network
versions an ARM template of 2016-2018 writes accepted (issue 11 item 3)."""

import pytest

from scaleset.api import versions
from scaleset.api.versions import InvalidApiVersion

TABLES = {name: getattr(versions, name) for name in (
    "COMPUTE", "GALLERY", "NETWORK", "RESOURCES", "SERVICE_FABRIC", "SUBSCRIPTIONS")}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_table_is_in_calendar_order_without_repeats(name: str) -> None:
    table = TABLES[name]
    assert list(table) == sorted(set(table)), name


@pytest.mark.parametrize("version", ["2016-03-30", "2016-09-01", "2017-03-01", "2017-10-01",
                                     "2018-02-01", "2018-08-01"])
def test_published_network_versions_before_2018_10_are_accepted(version: str) -> None:
    assert versions.check(version, versions.NETWORK, provider="Microsoft.Network") == version


def test_a_network_version_never_published_is_refused() -> None:
    with pytest.raises(InvalidApiVersion):
        versions.check("2016-10-15", versions.NETWORK, provider="Microsoft.Network")
