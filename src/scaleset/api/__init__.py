"""The Azure-Resource-Manager-compatible HTTP API (FastAPI).

* ``app``      — ``create_app(context)``: routers, middleware, error handlers
* ``context``  — what the routes need (store, clock, settings, the reconciler's doorbell)
* ``versions`` — accepted api-versions
* ``envelope`` — ARM's error envelope and the one place exceptions become responses
* ``paths``    — case-insensitive ARM path segments
* ``auth``     — bearer tokens, reader and contributor
* ``lro``      — long-running operations and their status endpoint
* ``paging``   — ``value`` + absolute ``nextLink``
* ``routes/``  — one module per resource type
"""
