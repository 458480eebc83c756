"""scaleset: a control plane for virtual machine scale sets with automatic OS image upgrades."""

__version__ = "0.1.0"
