"""``GET /metadata/endpoints``: the cloud's endpoints, what ``az cloud register`` reads.

az (``command_modules/cloud/custom.py``) asks
``<resource manager>/metadata/endpoints?api-version=2022-09-01`` and reads one
object: ``name``, ``resourceManager``, ``authentication.loginEndpoint``,
``authentication.audiences[0]`` (its ``management`` and
``active_directory_resource_id``), ``suffixes`` and optional endpoints.
``ARM_CLOUD_METADATA_URL`` (2019-05-01, 2020-06-01) reads a list of such
objects; Azure Stack's tools ask 2015-01-01, the older flat form
(``galleryEndpoint``, ``graphEndpoint``, ``portalEndpoint``, ``authentication``).

``loginEndpoint`` is this server's ``/adfs`` authority. MSAL checks an Entra
authority on a host it does not know by asking ``login.microsoftonline.com``
(instance discovery), which does not know this server either (and which a
closed network cannot reach); az turns that off only with ``az config set
core.instance_discovery=false``. An authority whose path is ``/adfs`` is, to
MSAL and az, one the user vouches for (Azure Stack Hub's disconnected form),
so az signs in with no such setting. The same tenant answers at
``/<tenant id>`` and ``/organizations`` for clients that name it.

No bearer token is needed (ARM serves this without one). A trailing slash on
the registered endpoint makes az ask ``//metadata/endpoints``; that is served too.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from scaleset.api import versions
from scaleset.api.routes.authority import base_url
from scaleset.security import authority

router = APIRouter(tags=["metadata"])

LIST_FORMS: Final = ("2019-05-01", "2020-06-01")
"""Api-versions answered with a list of clouds (what ``ARM_CLOUD_METADATA_URL`` reads)."""
ONE_CLOUD: Final = ("2022-09-01",)
FLAT: Final = ("2015-01-01",)
METADATA: Final = tuple(sorted(FLAT + LIST_FORMS + ONE_CLOUD))
CLOUD_NAME: Final = "scaleset"


def cloud(base: str) -> dict[str, Any]:
    """This server as one cloud, in the 2022-09-01 shape.

    >>> cloud("https://127.0.0.1:8443")["authentication"]["loginEndpoint"]
    'https://127.0.0.1:8443/adfs'
    """
    return {
        "name": CLOUD_NAME,
        "resourceManager": f"{base}/",
        "portal": f"{base}/docs",
        "authentication": {
            "loginEndpoint": f"{base}/{authority.ADFS}",
            "audiences": [f"{base}/", base],
            "tenant": authority.ADFS,
            "identityProvider": "ADFS",
        },
        "suffixes": {},
    }


@router.get("/metadata/endpoints", summary="The cloud's endpoints (az cloud register)")
@router.get("//metadata/endpoints", include_in_schema=False)
def endpoints(request: Request,
              api_version: str | None = Query(default=None, alias="api-version")
              ) -> JSONResponse:
    chosen = versions.check(api_version, METADATA, provider="metadata/endpoints")
    one = cloud(base_url(request))
    if chosen in LIST_FORMS:
        return JSONResponse([one])
    if chosen in FLAT:
        return JSONResponse({"galleryEndpoint": "", "graphEndpoint": "",
                             "portalEndpoint": one["portal"],
                             "authentication": {"loginEndpoint": one["authentication"][
                                 "loginEndpoint"], "audiences": one["authentication"][
                                 "audiences"]}})
    return JSONResponse(one)
