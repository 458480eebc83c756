"""Drivers: where instances live. One Protocol (``base``), one module per implementation."""
