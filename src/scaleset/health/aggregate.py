"""One instance's health from its signals.

The rule, in order:

1. not running (booting, stopped, being reimaged) -> Unknown while it is
   transitional, Unhealthy when it is down;
2. any extension failed to provision -> Unhealthy; any still provisioning
   -> Initializing;
3. a health source is configured (load-balancer probe or Application Health
   extension) -> what it says;
4. otherwise -> Healthy: running with every extension provisioned is what
   "healthy" means for a scale set with neither probe nor health extension.
"""

from __future__ import annotations

from collections.abc import Iterable

from scaleset.model.instance import HealthState, PowerState

EXTENSION_SUCCEEDED = "Succeeded"
EXTENSION_FAILED = "Failed"


def instance_health(
    power_state: PowerState,
    extension_states: Iterable[str],
    probe: HealthState | None,
) -> HealthState:
    """Aggregate an instance's signals (see the module docstring).

    >>> instance_health(PowerState.RUNNING, ["Succeeded"], None)
    <HealthState.HEALTHY: 'Healthy'>
    >>> instance_health(PowerState.RUNNING, ["Succeeded"], HealthState.UNHEALTHY)
    <HealthState.UNHEALTHY: 'Unhealthy'>
    >>> instance_health(PowerState.RUNNING, ["Failed"], HealthState.HEALTHY)
    <HealthState.UNHEALTHY: 'Unhealthy'>
    >>> instance_health(PowerState.STARTING, [], None)
    <HealthState.UNKNOWN: 'Unknown'>
    """
    if power_state in (PowerState.STARTING, PowerState.STOPPING):
        return HealthState.UNKNOWN
    if power_state is not PowerState.RUNNING:
        return HealthState.UNHEALTHY
    pending = False
    for state in extension_states:
        if state == EXTENSION_FAILED:
            return HealthState.UNHEALTHY
        if state != EXTENSION_SUCCEEDED:
            pending = True
    if pending:
        return HealthState.INITIALIZING
    if probe is not None:
        return probe
    return HealthState.HEALTHY
