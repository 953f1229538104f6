"""Strict reading of a YAML document: every problem collected, each with file, line and key.

Generic readers (mappings with known keys, strings, choices, booleans, lists, URLs,
files) used by :mod:`airgap.manifest.model`; they never raise, they record what is wrong.

Before anything is built from it, a document's events are counted (:func:`check_bounds`):
its nesting depth, its aliases, and the nodes it stands for once every alias is expanded.
A "billion laughs" of nested aliases, a recursive alias or ``[`` twenty thousand deep is
refused in milliseconds, in the memory of one event at a time.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from airgap.files import check_regular
from airgap.net.urls import BadURL, check_url

#: libyaml's parser where PyYAML was built with it (Debian's and the wheels are): ten
#: times faster than the pure Python one, with the same marks and errors.
LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Bounds:
    """How large a YAML document may be, in the terms that cost memory and time."""

    max_depth: int = 32
    max_aliases: int = 64
    max_nodes: int = 100_000


class TooComplex(ValueError):
    """A document past one of its :class:`Bounds`; ``line`` is where (1-based)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def check_bounds(text: str, bounds: Bounds | None = None) -> None:
    """Raise :class:`TooComplex` if ``text`` goes deeper, holds more aliases or stands for
    more nodes (aliases expanded) than ``bounds`` allow, or has an alias inside the node
    it names; :class:`yaml.YAMLError` if it is not YAML. Reads events only, never builds
    the document."""
    bounds = bounds or Bounds()
    try:
        _count(text, bounds)
    except yaml.MarkedYAMLError as exc:
        # libyaml's scanner has a depth limit of its own (1,000), reached before the
        # events that would have been counted here.
        if "nesting depth" not in str(exc.problem):
            raise
        mark = exc.problem_mark
        raise TooComplex(mark.line + 1 if mark else 0,
                         f"nests deeper than {bounds.max_depth} levels") from None


def _count(text: str, bounds: Bounds) -> None:
    aliases = nodes = 0
    sizes: dict[str, int] = {}  # anchor -> nodes it stands for
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, nodes counted at its start)
    for event in yaml.parse(text, Loader=LOADER):
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > bounds.max_aliases:
                raise TooComplex(line, f"holds more than {bounds.max_aliases} aliases")
            if any(anchor == event.anchor for anchor, _ in open_nodes):
                raise TooComplex(line, f"has the alias *{event.anchor} inside the node it "
                                       "names: it would never end")
            nodes += sizes.get(str(event.anchor), 1)
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            nodes += 1
            open_nodes.append((event.anchor, nodes))
            if len(open_nodes) > bounds.max_depth:
                raise TooComplex(line, f"nests deeper than {bounds.max_depth} levels")
        elif isinstance(event, yaml.CollectionEndEvent) and open_nodes:
            anchor, start = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = nodes - start + 1
        if nodes > bounds.max_nodes:
            raise TooComplex(line, f"stands for more than {bounds.max_nodes} values once its "
                                   "aliases are expanded")


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

    walk(yaml.compose(text, Loader=LOADER), "")
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
            hint = ("; give registry credentials with AIRGAP_REGISTRY, "
                    "AIRGAP_REGISTRY_USERNAME and AIRGAP_REGISTRY_PASSWORD or docker login"
                    ) if exc.credentials else ""
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
        try:
            check_regular(resolved)
        except FileNotFoundError:
            self.problem(path, f"no such file: {resolved}")
            return None
        except OSError as exc:
            self.problem(path, f"{resolved}: {exc.strerror}")
            return None
        return resolved
