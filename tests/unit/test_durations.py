"""Durations from clients: what timedelta cannot hold is a ValueError (a 400), never a crash."""

import pytest

from scaleset.model.durations import parse_duration


@pytest.mark.parametrize("value", [10**20, -(10**20), float("inf"), float("nan"), 1e300,
                                   "P99999999999999D", "PT99999999999999999999S"])
def test_durations_too_large_or_not_numbers_are_value_errors(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)
