"""``osUpgradeHistory``: the last five attempts of the past two months, newest first."""

from __future__ import annotations

from datetime import timedelta

from tests.integration.test_health_gates_api import VMSS, Api, api, create, history
from tests.integration.test_api import V

__all__ = ["api"]  # the fixture, shared with the health-gate tests

DAY = timedelta(days=1)


def test_history_shows_five_attempts_of_the_last_two_months_newest_first(api: Api) -> None:
    sid = create(api, capacity=2)
    start = api.world.clock.now()
    for minor in range(1, 8):  # seven automatic upgrades, one a day
        api.world.clock.advance_to(start + (minor - 1) * DAY)
        api.world.publish(f"1.{minor}.0")
        api.world.settle(sid)
    versions = [h["properties"]["targetImageReference"]["version"] for h in history(api)]
    assert versions == ["1.7.0", "1.6.0", "1.5.0", "1.4.0", "1.3.0"]
    starts = [h["properties"]["runningStatus"]["startTime"] for h in history(api)]
    assert starts == sorted(starts, reverse=True)

    # Two months (60 days) after the fourth run started, only the last three are shown.
    api.world.clock.advance_to(start + 3 * DAY + 60 * DAY + timedelta(hours=1))
    versions = [h["properties"]["targetImageReference"]["version"] for h in history(api)]
    assert versions == ["1.7.0", "1.6.0", "1.5.0"]

    api.world.clock.advance_to(start + 7 * DAY + 60 * DAY)
    assert history(api) == []
    # The runs themselves are kept: the latest is still readable.
    latest = api.client.get(f"{VMSS}/rollingUpgrades/latest{V}").json()
    assert latest["properties"]["runningStatus"]["code"] == "Completed"
