"""The errors a template can cause, with the codes ARM uses for them."""

from __future__ import annotations

from scaleset.errors import ScalesetError


class TemplateError(ScalesetError):
    """The template (or an expression in it) is not valid: 400 ``InvalidTemplate``.

    ARM answers a deployment whose template does not validate with this code and
    a message starting "Deployment template validation failed"; ``target`` names
    where in the template the problem is (e.g. ``resources[2].name``).
    """

    code = "InvalidTemplate"
    status = 400


class ExpressionError(TemplateError):
    """An expression could not be parsed or evaluated (``InvalidTemplate`` as well);
    the template walker adds where it was."""
