"""The log formats of ``scaleset serve`` (text or JSON lines) and the scrubbing behind both.

``configure(fmt=..., level=...)`` installs one handler on the root logger:
``scaleset.*`` loggers log at ``level`` (INFO by default), everything else
(uvicorn, libraries) at WARNING, and uvicorn's own handlers and access log are
removed so each line is written once, in the chosen format. Structured fields
travel in ``extra=fields(...)``:

>>> record = logging.makeLogRecord({"name": "scaleset.api", "levelname": "INFO",
...     "msg": "GET /x 404", "created": 0, **fields(status=404, code="NotFound")})
>>> JsonFormatter().format(record)
'{"time": "1970-01-01T00:00:00.000Z", "level": "INFO", "logger": "scaleset.api", \
"message": "GET /x 404", "status": 404, "code": "NotFound"}'

A log line must never carry a secret. Callers never log one (requests are
logged by path, without the query string; events carry no secrets), and every
line is also scrubbed on the way out (``scrub``): scaleset tokens, JWTs,
``Authorization`` values, secret query or form parameters (``code=``,
``client_secret=``, ``password=`` ...), and the values of secret fields
(``adminPassword``, ``customData``, ``protectedSettings`` ...), plus the exact
values the server was told are secret (its metrics token).

>>> scrub("GET /cb?code=abc&state=1 with Bearer sst_0a1b2c3d_s3cr3t")
'GET /cb?code=[redacted]&state=1 with Bearer [redacted]'
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any

FORMATS = ("text", "json")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
HANDLER_NAME = "scaleset"
"""The name of the handler ``configure`` installs (a second call replaces it)."""

REDACTED = "[redacted]"
_SECRET_KEYS = ("adminPassword", "customData", "protectedSettings",
                "protectedSettingsFromKeyVault", "client_secret", "clientSecret",
                "password", "secret", "token", "access_token", "accessToken",
                "refresh_token", "id_token", "client_assertion", "authorization")
_SECRET_PARAMS = ("code", "client_secret", "client_assertion", "password", "secret", "token",
                  "access_token", "refresh_token", "id_token", "sig", "api_key", "apikey")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A value of a secret field, as JSON or a Python repr shows it; a protectedSettings
    # object as a whole (its keys are the extension's, so none of them can be trusted).
    (re.compile(r"""(["']?(?:protectedSettings|protectedSettingsFromKeyVault)["']?\s*[:=]\s*)"""
                r"""\{[^{}]*\}""", re.IGNORECASE), r'\1"' + REDACTED + '"'),
    (re.compile(r"""(["'](?:""" + "|".join(_SECRET_KEYS) + r""")["']\s*:\s*)"""
                r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""", re.IGNORECASE),
     r'\1"' + REDACTED + '"'),
    # Credentials in a header value.
    (re.compile(r"\b(Bearer|Basic)\s+[^\s,;\"']+", re.IGNORECASE), r"\1 " + REDACTED),
    # scaleset's own tokens and signed access tokens, wherever they appear.
    (re.compile(r"\bsst_[A-Za-z0-9_\-]{3,}"), "sst_" + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"), REDACTED),
    # Secret query string or form parameters.
    (re.compile(r"(^|[?&;\s])(" + "|".join(_SECRET_PARAMS) + r")=([^&\s\"']+)",
                re.IGNORECASE), r"\1\2=" + REDACTED),
)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret it seems to hold replaced by ``[redacted]``.

    >>> scrub('{"adminPassword": "S3cret!", "protectedSettings": {"k": "v"}}')
    '{"adminPassword": "[redacted]", "protectedSettings": "[redacted]"}'
    >>> scrub("the metrics token is abcdefgh12345678", ["abcdefgh12345678"])
    'the metrics token is [redacted]'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra=`` of a log call that carries structured fields (None values dropped)."""
    return {"fields": {k: v for k, v in values.items() if v is not None}}


def _fields_of(record: logging.LogRecord) -> Mapping[str, Any]:
    found = getattr(record, "fields", None)
    return found if isinstance(found, Mapping) else {}


def _time(record: logging.LogRecord) -> str:
    at = datetime.fromtimestamp(record.created, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


class _Scrubbing(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value, self.secrets)
        if isinstance(value, (bool, int, float)) or value is None:
            return value
        if isinstance(value, Mapping):
            return {str(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._clean(v) for v in value]
        return scrub(str(value), self.secrets)

    def _exception(self, record: logging.LogRecord) -> str | None:
        if record.exc_info and record.exc_info[0] is not None:
            return scrub(self.formatException(record.exc_info), self.secrets)
        if record.exc_text:
            return scrub(record.exc_text, self.secrets)
        return None


class JsonFormatter(_Scrubbing):
    """One JSON object per line: time, level, logger, message, the record's fields, and
    ``exception`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _time(record), "level": record.levelname,
                                "logger": record.name,
                                "message": scrub(record.getMessage(), self.secrets)}
        for key, value in _fields_of(record).items():
            # A field never hides one of the line's own keys.
            line[key if key not in line else f"field_{key}"] = self._clean(value)
        exception = self._exception(record)
        if exception is not None:
            line["exception"] = exception
        return json.dumps(line, default=str)


class TextFormatter(_Scrubbing):
    """``<time> <LEVEL> <logger>: <message> key=value ...``, then the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{_time(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"]
        parts += [f"{k}={json.dumps(v, default=str) if not isinstance(v, str) or ' ' in v else v}"
                  for k, v in _fields_of(record).items()]
        text = scrub(" ".join(parts), self.secrets)
        exception = self._exception(record)
        return text if exception is None else f"{text}\n{exception}"


def configure(*, fmt: str = "text", level: str = "info", stream: IO[str] | None = None,
              secrets: Iterable[str] = ()) -> logging.Handler:
    """Send every log line to ``stream`` (stderr) in ``fmt``; replaces an earlier call's.

    ``level`` applies to scaleset's loggers; others log warnings and errors only.
    uvicorn's handlers go (its lines reach this handler instead, once) and its access
    log is silenced: ``api/access.py`` logs requests, by path without the query string.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format '{fmt}'; use one of {', '.join(FORMATS)}")
    if level not in LEVELS:
        raise ValueError(f"unknown log level '{level}'; use one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else TextFormatter(secrets))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("scaleset").setLevel(LEVELS[level])
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True  # its lines name the query string; ours do not
    logging.captureWarnings(True)  # a Python warning is a line in the format too
    return handler
