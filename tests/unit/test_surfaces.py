"""Meta-tests that pin surfaces: every action reaches the driver, every error has an ARM code."""

from __future__ import annotations

import inspect
from datetime import datetime

import pytest

from scaleset import errors
from scaleset.drivers.base import (
    DriverSnapshot,
    InstanceSpec,
    Operation,
    ReleaseOperation,
    RollbackOperation,
    UpgradeOperation,
)
from scaleset.reconcile import membership
from scaleset.reconcile.shell import Reconciler
from scaleset.store.repository import ScaleSetRow
from scaleset.upgrade import actions
from tests.support import scale_set_model


class RecordingDriver:
    def __init__(self) -> None:
        self.submitted: list[Operation] = []

    def create_instance(self, spec: InstanceSpec) -> None:
        raise AssertionError("not expected")

    def delete_instance(self, scale_set_id: str, instance_id: str) -> None:
        raise AssertionError("not expected")

    def submit(self, operation: Operation) -> None:
        self.submitted.append(operation)

    def observe(self, scale_set_id: str, now: datetime) -> DriverSnapshot:
        return DriverSnapshot({})


EXAMPLES = {
    actions.UpgradeInstance: (actions.UpgradeInstance("r/0/upgrade", "0", "1.1.0", 2),
                              UpgradeOperation),
    actions.RollbackInstance: (actions.RollbackInstance("r/0/rollback", "0"), RollbackOperation),
    actions.ReleasePreviousOsDisk: (actions.ReleasePreviousOsDisk("0"), ReleaseOperation),
}


def test_every_action_kind_has_an_example_here() -> None:
    assert set(actions.ACTION_TYPES) == set(EXAMPLES)


@pytest.mark.parametrize("kind", list(EXAMPLES), ids=lambda k: k.__name__)
def test_the_shell_turns_every_action_into_a_driver_operation(kind: type) -> None:
    action, operation_type = EXAMPLES[kind]
    driver = RecordingDriver()
    shell = Reconciler(store=None, driver=driver, clock=None)  # type: ignore[arg-type]
    model = scale_set_model("vmss1")
    now = datetime(2026, 1, 1).astimezone()
    row = ScaleSetRow("ss", "vmss1", "westus", model, 1, "1.0.0", 1, '"e"', now, now)
    digests = {"1.1.0": "sha256:" + "ab" * 32}
    shell._act(row, action, membership.Provisioning((), None, True), digests.get)
    assert len(driver.submitted) == 1
    submitted = driver.submitted[0]
    assert isinstance(submitted, operation_type)
    assert submitted.instance_id == "0"
    if hasattr(action, "op_id"):
        assert submitted.op_id == action.op_id  # type: ignore[union-attr]
    if isinstance(submitted, UpgradeOperation):  # the target version's artifact goes along
        assert submitted.image_digest == digests["1.1.0"]


def test_every_user_facing_error_carries_an_arm_code_and_an_http_status() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, errors.ScalesetError) and c is not errors.ScalesetError]
    assert classes
    for cls in classes:
        assert cls.code and cls.code[0].isupper(), cls
        assert 400 <= cls.status < 600, cls
        err = cls("the message", target="a.field")
        assert err.message == "the message" and err.target == "a.field"
