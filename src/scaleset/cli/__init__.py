"""The ``scaleset`` command line (Typer)."""
