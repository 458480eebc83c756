"""The base class every ARM-shaped model derives from."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ArmModel(BaseModel):
    """A pydantic model whose wire form is ARM JSON.

    * camelCase aliases, snake_case attributes (both accepted on input);
    * unknown fields are kept, because ARM resources carry many properties
      scaleset does not interpret and clients expect them back.

    >>> class Probe(ArmModel):
    ...     request_path: str | None = None
    >>> Probe.model_validate({"requestPath": "/health"}).to_wire()
    {'requestPath': '/health'}
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        validate_assignment=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The model as ARM JSON: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
