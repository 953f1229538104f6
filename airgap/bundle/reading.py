"""The strict reader of bundle.json: one JSON object at a time, every field checked, each
problem a :class:`DescriptionError` naming where it is (``items[3].verification.signer``).
:mod:`airgap.bundle.description` reads the document with it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

from airgap.errors import BundleError

_T = TypeVar("_T")


class DescriptionError(BundleError):
    """bundle.json does not have the shape its format gives it; ``field`` names where."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.field = where


class Reader:
    """One JSON object of the document, read key by key; ``where`` is its path in it."""

    def __init__(self, value: Any, where: str, keys: tuple[str, ...] | None = None) -> None:
        if not isinstance(value, dict):
            raise DescriptionError(where, f"expected an object, got {kind(value)}")
        if keys is not None:
            for key in value:
                if key not in keys:
                    raise DescriptionError(self._join(where, str(key)),
                                           "not a field of this bundle format")
        self.value: dict[str, Any] = value
        self.where = where

    @staticmethod
    def _join(where: str, key: str) -> str:
        return f"{where}.{key}" if where else key

    def at(self, key: str) -> str:
        """The path of ``key`` in the document."""
        return self._join(self.where, key)

    def raw(self, key: str, default: Any = ...) -> Any:
        """The value of ``key`` as it is; ``default`` when absent, else missing."""
        if key not in self.value:
            if default is ...:
                raise DescriptionError(self.at(key), "missing")
            return default
        return self.value[key]

    def string(self, key: str) -> str:
        """``key``'s value, a string."""
        value = self.raw(key)
        if not isinstance(value, str):
            raise DescriptionError(self.at(key), f"expected a string, got {kind(value)}")
        return value

    def optional_string(self, key: str) -> str | None:
        """``key``'s value, a string or null (or absent)."""
        value = self.raw(key, None)
        if value is not None and not isinstance(value, str):
            raise DescriptionError(self.at(key), f"expected a string, got {kind(value)}")
        return value

    def size(self, key: str) -> int:
        """``key``'s value, a byte count."""
        value = self.raw(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DescriptionError(self.at(key), f"expected a byte count, got {kind(value)}")
        return value

    def boolean(self, key: str) -> bool:
        """``key``'s value, true or false."""
        value = self.raw(key)
        if not isinstance(value, bool):
            raise DescriptionError(self.at(key), f"expected true or false, got {kind(value)}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        """``key``'s value, a list of strings."""
        return tuple(string(v, f"{self.at(key)}[{i}]")
                     for i, v in enumerate(self.list(key)))

    def list(self, key: str) -> list[Any]:
        """``key``'s value, a list."""
        value = self.raw(key)
        if not isinstance(value, list):
            raise DescriptionError(self.at(key), f"expected a list, got {kind(value)}")
        return value

    def objects(self, key: str, read: Callable[[Reader], _T],
                keys: tuple[str, ...]) -> tuple[_T, ...]:
        """``key``'s list of objects, each with only ``keys``, each read by ``read``."""
        return tuple(read(Reader(v, f"{self.at(key)}[{i}]", keys))
                     for i, v in enumerate(self.list(key)))

    def object(self, key: str, keys: tuple[str, ...] | None = None) -> Reader:
        """``key``'s object (with only ``keys``, when given)."""
        return Reader(self.raw(key), self.at(key), keys)


def kind(value: Any) -> str:
    """How a JSON value reads in a message: ``the string 'x'``, ``a list``..."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return "a number beyond numbers"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return {dict: "an object", list: "a list", type(None): "null"}.get(type(value),
                                                                        type(value).__name__)


def string(value: Any, where: str) -> str:
    """``value``, which must be a string (``where`` names it)."""
    if not isinstance(value, str):
        raise DescriptionError(where, f"expected a string, got {kind(value)}")
    return value


def names(cls: type) -> tuple[str, ...]:
    """The field names of dataclass ``cls``: the keys its JSON object may have."""
    return tuple(f.name for f in fields(cls))
