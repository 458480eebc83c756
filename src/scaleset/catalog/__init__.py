"""Image versions and the resolution of ``latest`` (pure)."""
