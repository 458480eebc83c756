"""The pure rules of gallery image versions: names, regions, replication states, latest."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from scaleset.catalog import gallery, latest
from scaleset.catalog.gallery import RegionReplication
from scaleset.catalog.latest import Candidate
from scaleset.model import gallery as gallery_model

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REGIONS = ["westus", "West US", "eastus", "East US 2", "northeurope", "uksouth"]


def test_the_worked_examples_hold() -> None:
    for module in (gallery, gallery_model):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


region_states = st.lists(
    st.builds(RegionReplication, name=st.sampled_from(REGIONS),
              state=st.sampled_from([gallery.REPLICATING, gallery.COMPLETED, gallery.FAILED]),
              completed_at=st.just(T0)),
    unique_by=lambda r: r.key, max_size=5)
targets = st.lists(st.sampled_from(REGIONS), unique_by=gallery.normalise_region, max_size=5)


@given(region_states, targets)
def test_following_new_targets_keeps_progress_and_retries_failures(
        before: list[RegionReplication], wanted: list[str]) -> None:
    later = T0 + timedelta(hours=1)
    after = gallery.follow_targets(before, wanted, later)
    assert [r.key for r in after] == [gallery.normalise_region(n) for n in wanted]
    old = {r.key: r for r in before}
    for region in after:
        kept = old.get(region.key)
        if kept is not None and kept.state != gallery.FAILED:
            assert region is kept  # nothing done is redone
        else:
            assert (region.state, region.started_at) == (gallery.REPLICATING, later)


@given(region_states)
def test_the_aggregated_state_is_the_worst_region(found: list[RegionReplication]) -> None:
    state = gallery.aggregated_state(found)
    states = {r.state for r in found}
    assert state == ("Unknown" if not found else "Failed" if gallery.FAILED in states
                     else "InProgress" if gallery.REPLICATING in states else "Completed")
    assert gallery.provisioning_state(found, "Creating") == {
        "Failed": "Failed", "InProgress": "Creating"}.get(state, "Succeeded")


@given(region_states, st.sampled_from(REGIONS))
def test_a_version_is_available_only_where_replication_completed(
        found: list[RegionReplication], location: str) -> None:
    at = gallery.available_at(found, location)
    mine = [r for r in found if r.key == gallery.normalise_region(location)]
    assert (at is not None) == (bool(mine) and mine[0].state == gallery.COMPLETED)


def test_region_names_compare_normalised_for_exclusion() -> None:
    profile = {"targetRegions": [{"name": "West US", "excludeFromLatest": True},
                                 {"name": "eastus"}]}
    assert gallery.excluded_in(profile, "westus")
    assert not gallery.excluded_in(profile, "East US")
    assert gallery.excluded_in({"excludeFromLatest": True, **profile}, "eastus")


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30)),
                min_size=1, max_size=8, unique=True))
def test_latest_orders_gallery_versions_as_integers(numbers: list[tuple[int, int, int]]) -> None:
    names = [".".join(map(str, n)) for n in numbers]
    assert all(gallery.is_version_name(n) for n in names)
    chosen = latest.choose([Candidate(n, T0, T0) for n in names], T0)
    assert chosen is not None and chosen.version == ".".join(map(str, max(numbers)))


def test_a_record_of_replication_survives_its_json_form() -> None:
    region = RegionReplication("West US", gallery.FAILED, 40, "disk full", T0, None)
    assert RegionReplication.from_json(region.to_json()) == region
    assert region.completed(T0).to_json()["progress"] == 100


def test_image_ids_parse_case_insensitively_and_latest_means_no_version() -> None:
    base = "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/galleries/g/images/i"
    assert gallery.parse_image_id(base) == gallery.GalleryImageId("s", "rg", "g", "i")
    assert gallery.parse_image_id(base + "/versions/latest") == \
        gallery.GalleryImageId("s", "rg", "g", "i")
    pinned = gallery.parse_image_id(base + "/VERSIONS/1.2.0")
    assert pinned is not None and pinned.version == "1.2.0"
    assert gallery.parse_image_id(base + "/versions/1.2.0/extra") is None
