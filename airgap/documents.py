"""JSON documents read with bounds: a size and a nesting depth.

Every JSON airgap reads comes from somewhere it does not trust: a server's answer, a
bundle that crossed the gap. Python's parser recurses once per level and gives up with a
``RecursionError`` around a thousand levels; an image manifest, an EPR answer or
bundle.json never needs more than a handful. :func:`parse_json` refuses both a document
deeper than ``max_depth`` and one larger than ``max_size`` with :class:`DocumentError`,
which the caller turns into the error of its own kind (a server's bad answer, a damaged
bundle) naming the document.
"""

from __future__ import annotations

import json
from typing import Any

#: Deep enough for every document airgap reads (bundle.json holds the manifest, itself
#: at most 32 deep), far below what exhausts the parser.
MAX_DEPTH = 64


class DocumentError(ValueError):
    """A document that is not JSON, or is larger or deeper than it may be; the message
    says which, without naming the document (the caller does)."""


def parse_json(data: bytes | str, *, max_size: int, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value ``data`` holds, refusing more than ``max_size`` bytes or
    ``max_depth`` levels of arrays and objects."""
    if len(data) > max_size:
        raise DocumentError(f"larger than the {max_size} bytes it may have")
    try:
        value = json.loads(data)
    except RecursionError:
        raise DocumentError(f"nested deeper than the {max_depth} levels it may have") from None
    except ValueError as exc:
        raise DocumentError(f"not valid JSON ({exc})") from None
    if nesting(value) > max_depth:
        raise DocumentError(f"nested deeper than the {max_depth} levels it may have")
    return value


def nesting(value: Any) -> int:
    """How many arrays and objects deep ``value`` goes, counted without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children
                     if isinstance(child, dict | list))
    return deepest
