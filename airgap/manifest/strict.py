"""Strict reading of a YAML document: every problem collected, each with file, line and key.

Generic readers (mappings with known keys, strings, choices, booleans, lists, URLs,
files) used by :mod:`airgap.manifest.model`; they never raise, they record what is wrong.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from airgap.net.urls import BadURL, check_url


def key_lines(text: str) -> tuple[dict[str, int], list[tuple[str, int, int]]]:
    """Map each key path to its line, and find keys given twice in one mapping."""
    lines: dict[str, int] = {}
    duplicates: list[tuple[str, int, int]] = []

    def walk(node: yaml.Node | None, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                path = f"{prefix}.{key}" if prefix else key
                line = key_node.start_mark.line + 1
                if key in seen:
                    duplicates.append((path, seen[key], line))
                seen[key] = line
                lines.setdefault(path, line)
                walk(value_node, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                path = f"{prefix}[{index}]"
                lines.setdefault(path, item.start_mark.line + 1)
                walk(item, path)

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    return lines, duplicates


def describe(value: Any) -> str:
    """How a YAML value reads in a message: 'the string 'x'', 'a list'..."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _one_of(value: Any, choices: tuple[str, ...]) -> str:
    return f"{value!r} is not one of {', '.join(choices)}"


class Checker:
    """Reads the document key by key, collecting every problem instead of stopping."""

    def __init__(self, source: str, lines: dict[str, int], base_dir: Path) -> None:
        self.source = source
        self.lines = lines
        self.base_dir = base_dir
        self._found: list[tuple[int, str]] = []

    @property
    def problems(self) -> list[str]:
        """Every problem found so far, in the order of the file's lines."""
        return [text for _, text in sorted(self._found, key=lambda found: found[0])]

    def problem(self, path: str, message: str, line: int | None = None) -> None:
        line = line or self.lines.get(path, 0)
        where = f"{self.source}:{line}" if line else self.source
        self._found.append((line, f"{where}: {path}: {message}" if path else
                            f"{where}: {message}"))

    # -- generic readers -------------------------------------------------------------------

    def mapping(self, value: Any, path: str, keys: tuple[str, ...]) -> dict[str, Any]:
        """A mapping with only ``keys``; null or absent reads as empty."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping with keys {', '.join(keys)}, "
                               f"got {describe(value)}")
            return {}
        for key in value:
            if key not in keys:
                child = f"{path}.{key}" if path else str(key)
                hint = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.6)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else \
                    f"; known keys: {', '.join(keys)}"
                self.problem(child, f"unknown key{suggestion}")
        return value

    def string(self, value: Any, path: str, example: str) -> str | None:
        if isinstance(value, str) and value.strip():
            return value.strip()
        hint = " (quote it)" if isinstance(value, int | float) else ""
        self.problem(path, f"expected a string like {example!r}, got {describe(value)}{hint}")
        return None

    def choice(self, value: Any, path: str, choices: tuple[str, ...],
               aliases: Mapping[str, str] | None = None) -> str | None:
        aliases = aliases or {}
        if isinstance(value, str) and value in choices:
            return value
        if isinstance(value, str) and value in aliases:
            return aliases[value]
        message = _one_of(value, choices) if isinstance(value, str) else \
            f"expected one of {', '.join(choices)}, got {describe(value)}"
        if aliases:
            message += f" (aliases: {', '.join(aliases)})"
        self.problem(path, message)
        return None

    def boolean(self, value: Any, path: str, default: bool) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        self.problem(path, f"expected true or false, got {describe(value)}")
        return default

    def items(self, value: Any, path: str) -> list[tuple[str, Any]]:
        """The (path, item) pairs of a list; null reads as an empty list."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, f"expected a list, got {describe(value)}")
            return []
        return [(f"{path}[{i}]", item) for i, item in enumerate(value)]

    def unique(self, pairs: list[tuple[str, str | None]]) -> tuple[str, ...]:
        """Drop failed items; report an item that repeats an earlier one."""
        seen: dict[str, str] = {}
        for item_path, item in pairs:
            if item is None:
                continue
            if item in seen:
                self.problem(item_path, f"{item} is already given at {seen[item]}")
            else:
                seen[item] = item_path
        return tuple(seen)

    def choices(self, value: Any, path: str, choices: tuple[str, ...], default: tuple[str, ...],
                aliases: Mapping[str, str] | None = None) -> tuple[str, ...]:
        if value is None:
            return default
        pairs = [(p, self.choice(v, p, choices, aliases)) for p, v in self.items(value, path)]
        if isinstance(value, list) and not value:
            self.problem(path, f"name at least one of {', '.join(choices)}")
        return self.unique(pairs) or default

    def url(self, value: Any, path: str, default: str, *, folder: bool,
            root_only: bool = False) -> str:
        if value is None:
            return default
        text = self.string(value, path, default)
        if text is None:
            return default
        try:
            return check_url(text, folder=folder, root_only=root_only)
        except BadURL as exc:
            hint = ("; give registry credentials with AIRGAP_REGISTRY_USERNAME and "
                    "AIRGAP_REGISTRY_PASSWORD or docker login") if exc.credentials else ""
            self.problem(path, f"{exc}{hint}")
            return default

    def file(self, value: Any, path: str) -> Path | None:
        text = self.string(value, path, "certs/ca.pem")
        if text is None:
            return None
        try:
            resolved = (self.base_dir / Path(text).expanduser()).resolve()
        except RuntimeError as exc:  # ~user of a user that does not exist
            self.problem(path, f"{text!r}: {exc}")
            return None
        if not resolved.is_file():
            self.problem(path, f"no such file: {resolved}")
            return None
        return resolved
