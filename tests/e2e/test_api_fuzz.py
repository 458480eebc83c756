"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis).

Whatever the request, the answer is never a 5xx, and every error is in ARM's
envelope with a code and a message (HEAD: no body at all, as HTTP has it).
Bounded: a handful of examples per route.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")

from scaleset.api.app import create_app  # noqa: E402
from scaleset.api.context import ApiContext  # noqa: E402
from scaleset.clock import SystemClock  # noqa: E402
from scaleset.store.database import open_store  # noqa: E402


# The schema is read when the module loads; its store lives in a temporary directory
# that is removed when the interpreter exits.
_TMP = tempfile.TemporaryDirectory(prefix="scaleset-fuzz-")
_STORE = open_store(f"sqlite:///{Path(_TMP.name) / 'fuzz.db'}")
_APP = create_app(ApiContext(store=_STORE, clock=SystemClock(), auth_required=False))
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@schema.parametrize()
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_no_request_gets_a_server_error_and_every_error_is_an_arm_envelope(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    if case.method.upper() == "HEAD":  # HTTP: a HEAD answer never has a body, error or not
        assert response.content == b"", (case.formatted_path, response.content[:200])
        return
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
