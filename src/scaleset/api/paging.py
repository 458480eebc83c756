"""Lists page as ``{"value": [...], "nextLink": <absolute URL with api-version>}``.

The SDK GETs ``nextLink`` verbatim, so it must be absolute and carry every
query parameter of the first request (``include_query_params`` keeps them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request

from scaleset.errors import InvalidParameter

SKIP_TOKEN = "$skiptoken"


def page(request: Request, items: Sequence[Any], size: int) -> dict[str, Any]:
    raw = request.query_params.get(SKIP_TOKEN, "0")
    if not (raw.isascii() and raw.isdigit()):  # "²".isdigit() too, but int() refuses it
        raise InvalidParameter(f"$skiptoken '{raw}' is not one this server issued",
                               target=SKIP_TOKEN)
    start = int(raw)
    chunk = list(items[start:start + size])
    out: dict[str, Any] = {"value": chunk}
    if start + size < len(items):
        out["nextLink"] = str(request.url.include_query_params(**{SKIP_TOKEN: start + size}))
    return out
