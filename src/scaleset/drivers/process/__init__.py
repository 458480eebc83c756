"""The ``process`` driver: every instance is a supervised OS process on this machine.

An instance has an OS disk (a private copy of its image's tree), data disks
(directories that outlive OS disks), a private IP address in 127.0.0.0/8 and a
serial console log. See ``driver.py`` for the operations and ``probes.py`` for
how health is watched.
"""
