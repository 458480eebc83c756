"""What-if rollouts: a scenario file, run on the simulated driver and a virtual clock."""
