"""``python -m scaleset``: the same as the ``scaleset`` command."""

from scaleset.cli.app import main

main()
