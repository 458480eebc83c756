"""The pure core of rolling OS image upgrades: no I/O, no clock reads, no randomness.

* ``state``        — a run and its instances, as persisted
* ``observations`` — what the shell saw this pass (health, driver operations)
* ``actions``      — what the shell must do next
* ``policy``       — batch sizing and gate arithmetic
* ``run``          — ``decide(state, observations, now)``: the run's state machine
* ``trigger``      — when a new run starts (delays, maintenance windows, deferral)
* ``timing``       — rollout delays, jitter and presets of automatic runs
* ``windows``      — maintenance windows in time (inside, next opening, DST)
* ``status``       — a run as ARM's rolling-upgrade status and history
"""
