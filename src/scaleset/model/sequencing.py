"""Extension sequencing: the order ``provisionAfterExtensions`` asks for.

Uses the standard library's ``graphlib``; this module only turns its answer
into the order extensions run in and its failures into errors that name the
offending extension.
"""

from __future__ import annotations

from collections.abc import Sequence
from graphlib import CycleError, TopologicalSorter

from scaleset.model.scaleset import Extension


class SequencingError(ValueError):
    """``provisionAfterExtensions`` names an unknown extension or forms a cycle."""

    def __init__(self, message: str, target: str) -> None:
        super().__init__(message)
        self.target = target


def extension_order(extensions: Sequence[Extension]) -> list[str]:
    """Extension names in the order they run: each after those it waits for,
    otherwise in the order the model lists them.

    >>> from scaleset.model.scaleset import Extension
    >>> exts = [Extension.model_validate(e) for e in [
    ...     {"name": "app", "properties": {"publisher": "p", "type": "t",
    ...                                    "provisionAfterExtensions": ["health"]}},
    ...     {"name": "health", "properties": {"publisher": "p", "type": "t"}}]]
    >>> extension_order(exts)
    ['health', 'app']
    """
    names = [e.name for e in extensions]
    position = {name: i for i, name in enumerate(names)}
    graph: dict[str, list[str]] = {}
    for i, ext in enumerate(extensions):
        for before in ext.properties.provision_after_extensions:
            if before not in position:
                raise SequencingError(
                    f"extension '{ext.name}' lists '{before}' in provisionAfterExtensions, but "
                    f"the scale set has no extension of that name (it has: "
                    f"{', '.join(names) or 'none'}); fix the name or add the extension",
                    target=f"virtualMachineProfile.extensionProfile.extensions[{i}]"
                           ".properties.provisionAfterExtensions",
                )
        graph[ext.name] = list(ext.properties.provision_after_extensions)
    sorter = TopologicalSorter(graph)
    try:
        sorter.prepare()
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise SequencingError(
            f"provisionAfterExtensions forms a cycle ({cycle}); remove one of these "
            "dependencies so the extensions can be ordered",
            target="virtualMachineProfile.extensionProfile.extensions",
        ) from exc
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return order
