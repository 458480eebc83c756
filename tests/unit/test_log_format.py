"""serve's log lines: JSON objects or readable text, and never a secret in either."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from scaleset.telemetry import logs


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """``logs.configure`` changes process-wide loggers: put them back afterwards."""
    root, ours = logging.getLogger(), logging.getLogger("scaleset")
    uvicorn = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = (root.level, list(root.handlers), ours.level,
             [(u.level, list(u.handlers), u.propagate, u.disabled) for u in uvicorn])
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    ours.setLevel(saved[2])
    for u, (level, handlers, propagate, disabled) in zip(uvicorn, saved[3], strict=True):
        u.setLevel(level)
        u.handlers[:] = handlers
        u.propagate, u.disabled = propagate, disabled
    logging.captureWarnings(False)


@pytest.mark.parametrize(("line", "secret"), [
    ("GET /cb?code=0.AXoA-secret-code&state=x", "0.AXoA-secret-code"),
    ("POST body client_secret=hunter2hunter2&grant_type=client_credentials", "hunter2hunter2"),
    ("Authorization: Bearer sst_0a1b2c3d_Zm9vYmFyYmF6cXV4", "Zm9vYmFyYmF6cXV4"),
    ("token sst_e2e0test_contributor-token-for-the-e2e-suite seen", "contributor-token"),
    ("jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXBhcnQ", "eyJzdWIiOiIxMjMifQ"),
    ('{"osProfile": {"adminPassword": "S3cret!pass", "customData": "ZWNobyBoaQ=="}}',
     "S3cret!pass"),
    ('{"osProfile": {"adminPassword": "S3cret!pass", "customData": "ZWNobyBoaQ=="}}',
     "ZWNobyBoaQ=="),
    ("{'protectedSettings': {'storageAccountKey': 'a2V5a2V5'}}", "a2V5a2V5"),
    ('"password": "with \\"quotes\\" inside"', "quotes"),
])
def test_scrub_removes_every_kind_of_secret(line: str, secret: str) -> None:
    cleaned = logs.scrub(line)
    assert secret not in cleaned
    assert logs.REDACTED in cleaned


def test_scrub_keeps_what_is_no_secret() -> None:
    line = ("GET /subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/"
            "virtualMachineScaleSets/web 404 ResourceNotFound status=404 batch=1")
    assert logs.scrub(line) == line


def test_a_secret_the_server_knows_is_scrubbed_wherever_it_appears() -> None:
    assert logs.scrub("scraped with 9f86d081884c7d65", ["9f86d081884c7d65"]) == \
        "scraped with [redacted]"


def _record(message: str, *, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("the database went away while holding sst_0a1b2c3d_abcdef")
        except RuntimeError as error:
            exc_info = (type(error), error, error.__traceback__)
    return logging.LogRecord("scaleset.api.access", logging.ERROR if exc else logging.INFO,
                             __file__, 1, message, (), exc_info)


def test_a_json_line_has_time_level_logger_message_and_the_fields() -> None:
    record = _record("GET /x 404 NotFound")
    record.fields = {"status": 404, "error_code": "NotFound", "path": "/x",
                     "message": "a field never hides the line's own key"}
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["level"] == "INFO" and line["logger"] == "scaleset.api.access"
    assert line["message"] == "GET /x 404 NotFound"
    assert line["status"] == 404 and line["error_code"] == "NotFound" and line["path"] == "/x"
    assert line["field_message"] == "a field never hides the line's own key"
    assert line["time"].endswith("Z") and "T" in line["time"]


def test_a_json_line_carries_the_traceback_scrubbed() -> None:
    text = logs.JsonFormatter().format(_record("GET /x 500", exc=True))
    assert "\n" not in text  # one line, whatever the traceback holds
    line = json.loads(text)
    assert "Traceback (most recent call last)" in line["exception"]
    assert "RuntimeError: the database went away" in line["exception"]
    assert "abcdef" not in text


def test_a_text_line_reads_as_a_sentence_with_its_fields() -> None:
    record = _record("RunFinished on web: run Faulted")
    record.fields = {"status": "Faulted", "error_code": "RollingUpgradeFailed", "batch": 2}
    line = logs.TextFormatter().format(record)
    assert line.endswith("INFO    scaleset.api.access: RunFinished on web: run Faulted "
                         "status=Faulted error_code=RollingUpgradeFailed batch=2")


def test_configure_installs_one_handler_and_a_second_call_replaces_it(
        restored_logging: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure(fmt="text", stream=first)
    logs.configure(fmt="json", level="debug", stream=second)
    ours = [h for h in logging.getLogger().handlers if h.get_name() == logs.HANDLER_NAME]
    assert len(ours) == 1
    logging.getLogger("scaleset.test").debug("hello %s", "there", extra=logs.fields(n=1))
    logging.getLogger("some.library").info("not shown: libraries log warnings only")
    assert first.getvalue() == ""
    lines = [json.loads(x) for x in second.getvalue().splitlines()]
    assert [(x["message"], x["n"]) for x in lines] == [("hello there", 1)]


def test_uvicorn_logs_through_the_one_handler_and_its_access_log_is_off(
        restored_logging: None) -> None:
    out = io.StringIO()
    logs.configure(fmt="json", stream=out)
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("uvicorn.access").warning('127.0.0.1 - "GET /cb?code=abc HTTP/1.1" 200')
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["logger"] for x in lines] == ["uvicorn.error"]


def test_a_warning_from_the_warnings_module_is_a_json_line_too(restored_logging: None) -> None:
    out = io.StringIO()
    logs.configure(fmt="json", stream=out)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("something is deprecated", DeprecationWarning, stacklevel=1)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert lines and "something is deprecated" in lines[0]["message"]


def test_unknown_formats_and_levels_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        logs.configure(fmt="xml")
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        logs.configure(level="loud")
