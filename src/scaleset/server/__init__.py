"""``scaleset serve``: one process running the API, the reconcile loop and the driver."""
