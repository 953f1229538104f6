"""``bundle.json``: what a bundle holds, where each file came from and how it was checked.

A frozen model, read with every field checked (:meth:`BundleDescription.from_dict`
raises :class:`DescriptionError` naming the field, never a ``KeyError``) and written in
one place. ``format`` versions the whole document: a reader refuses a format it does not
know, and a field this format does not have. See docs/bundle.md.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from airgap.bundle.layout import DESCRIPTION
from airgap.errors import BundleError
from airgap.files import atomic_write

FORMAT = 1
#: What a file of the bundle can be.
KINDS = ("image-index", "image-manifest", "image-config", "image-layer", "image-blob",
         "oci-layout", "artifact", "artifact-checksum", "artifact-signature", "package",
         "package-signature", "key")
_SHA512 = re.compile(r"[0-9a-f]{128}\Z")
_T = TypeVar("_T")


class DescriptionError(BundleError):
    """bundle.json does not have the shape its format gives it; ``field`` names where."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.field = where


class _Reader:
    """One JSON object of the document, read key by key; ``where`` is its path in it."""

    def __init__(self, value: Any, where: str, keys: tuple[str, ...] | None = None) -> None:
        if not isinstance(value, dict):
            raise DescriptionError(where, f"expected an object, got {_kind(value)}")
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
        if key not in self.value:
            if default is ...:
                raise DescriptionError(self.at(key), "missing")
            return default
        return self.value[key]

    def string(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            raise DescriptionError(self.at(key), f"expected a string, got {_kind(value)}")
        return value

    def optional_string(self, key: str) -> str | None:
        value = self.raw(key, None)
        if value is not None and not isinstance(value, str):
            raise DescriptionError(self.at(key), f"expected a string, got {_kind(value)}")
        return value

    def size(self, key: str) -> int:
        value = self.raw(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DescriptionError(self.at(key), f"expected a byte count, got {_kind(value)}")
        return value

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise DescriptionError(self.at(key), f"expected true or false, got {_kind(value)}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        return tuple(_string(v, f"{self.at(key)}[{i}]")
                     for i, v in enumerate(self.list(key)))

    def list(self, key: str) -> list[Any]:
        value = self.raw(key)
        if not isinstance(value, list):
            raise DescriptionError(self.at(key), f"expected a list, got {_kind(value)}")
        return value

    def objects(self, key: str, read: Callable[[_Reader], _T],
                keys: tuple[str, ...]) -> tuple[_T, ...]:
        return tuple(read(_Reader(v, f"{self.at(key)}[{i}]", keys))
                     for i, v in enumerate(self.list(key)))

    def object(self, key: str, keys: tuple[str, ...] | None = None) -> _Reader:
        return _Reader(self.raw(key), self.at(key), keys)


def _kind(value: Any) -> str:
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


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise DescriptionError(where, f"expected a string, got {_kind(value)}")
    return value


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Verification:
    """How one file was checked; which fields a file has depends on its kind."""

    sha256: str | None = None  # image blobs: "matches the blob's digest"
    product: str | None = None
    platform: str | None = None
    format: str | None = None
    package: str | None = None
    version: str | None = None
    checksum: str | None = None  # the path of an artifact's .sha512
    signature: str | None = None  # the path of a file's signature
    signer: str | None = None  # the fingerprint of the key that made it
    checksum_of: str | None = None
    signature_of: str | None = None
    fingerprint: str | None = None  # of a key file

    def to_dict(self) -> dict[str, str]:
        """The bundle.json form: only the fields that are set."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}

    @classmethod
    def read(cls, reader: _Reader) -> Verification:
        return cls(**{name: reader.optional_string(name) for name in reader.value})


@dataclass(frozen=True)
class Item:
    """One file of the bundle."""

    path: str
    kind: str
    size: int
    sha512: str
    source: str | None = None
    verification: Verification = field(default_factory=Verification)

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {"path": self.path, "kind": self.kind, "size": self.size, "sha512": self.sha512,
                "source": self.source, "verification": self.verification.to_dict()}

    @classmethod
    def read(cls, reader: _Reader) -> Item:
        kind = reader.string("kind")
        if kind not in KINDS:
            raise DescriptionError(reader.at("kind"), f"{kind[:40]!r} is not a kind of file "
                                                      "a bundle holds")
        sha512 = reader.string("sha512")
        if not _SHA512.match(sha512):
            raise DescriptionError(reader.at("sha512"), "not a SHA-512 in hex")
        verification = Verification()
        if "verification" in reader.value:
            verification = Verification.read(reader.object("verification",
                                                           _names(Verification)))
        return cls(reader.string("path"), kind, reader.size("size"), sha512,
                   reader.optional_string("source"), verification)


@dataclass(frozen=True)
class Key:
    """A public key the contents were verified with, as ``keys/<fingerprint>.asc``."""

    fingerprint: str
    uids: tuple[str, ...]
    source: str
    path: str
    elastic: bool

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {"fingerprint": self.fingerprint, "uids": list(self.uids),
                "source": self.source, "path": self.path, "elastic": self.elastic}

    @classmethod
    def read(cls, reader: _Reader) -> Key:
        return cls(reader.string("fingerprint"), reader.strings("uids"),
                   reader.string("source"), reader.string("path"), reader.boolean("elastic"))


@dataclass(frozen=True)
class PlatformImage:
    """One platform of the image: its manifest, config and layers (digests)."""

    manifest: str
    config: str
    layers: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {"manifest": self.manifest, "config": self.config, "layers": list(self.layers)}

    @classmethod
    def read(cls, reader: _Reader) -> PlatformImage:
        return cls(reader.string("manifest"), reader.string("config"), reader.strings("layers"))


@dataclass(frozen=True)
class Tailored:
    """A tailored registry image: ``base`` (as ``Image.source`` served it) plus ``layer``,
    which holds the bundle's ``packages`` (their zips' paths) under ``package_path``."""

    base: str
    layer: str
    diff_id: str
    package_path: str
    packages: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {"base": self.base, "layer": self.layer, "diff_id": self.diff_id,
                "package_path": self.package_path, "packages": list(self.packages)}

    @classmethod
    def read(cls, reader: _Reader) -> Tailored:
        return cls(reader.string("base"), reader.string("layer"), reader.string("diff_id"),
                   reader.string("package_path"), reader.strings("packages"))


@dataclass(frozen=True)
class Image:
    """The package registry image: what the tag named upstream, and what is stored.
    For a tailored registry, upstream is its base, and ``tailored`` says what was added."""

    reference: str
    source: str
    upstream_digest: str
    upstream_media_type: str
    digest: str
    media_type: str
    layout: str
    platforms: Mapping[str, PlatformImage]
    tailored: Tailored | None = None

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {"reference": self.reference, "source": self.source,
                "upstream_digest": self.upstream_digest,
                "upstream_media_type": self.upstream_media_type, "digest": self.digest,
                "media_type": self.media_type, "layout": self.layout,
                "platforms": {p: i.to_dict() for p, i in self.platforms.items()},
                **({"tailored": self.tailored.to_dict()} if self.tailored else {})}

    @classmethod
    def read(cls, reader: _Reader) -> Image:
        platforms = reader.object("platforms")
        tailored = Tailored.read(reader.object("tailored", _names(Tailored))) \
            if "tailored" in reader.value else None
        return cls(reader.string("reference"), reader.string("source"),
                   reader.string("upstream_digest"), reader.string("upstream_media_type"),
                   reader.string("digest"), reader.string("media_type"),
                   reader.string("layout"),
                   {str(p): PlatformImage.read(platforms.object(str(p), _names(PlatformImage)))
                    for p in platforms.value},
                   tailored)


@dataclass(frozen=True)
class Resolved:
    """What the manifest came to: the stack version, platforms, image, packages, products."""

    stack_version: str
    os: tuple[str, ...]
    arch: tuple[str, ...]
    formats: tuple[str, ...]
    image: str
    packages: Mapping[str, str]
    products: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {"stack_version": self.stack_version,
                "platforms": {"os": list(self.os), "arch": list(self.arch),
                              "formats": list(self.formats)},
                "image": self.image, "packages": dict(self.packages),
                "products": list(self.products)}

    @classmethod
    def read(cls, reader: _Reader) -> Resolved:
        platforms = reader.object("platforms", ("os", "arch", "formats"))
        packages = reader.object("packages")
        return cls(reader.string("stack_version"), platforms.strings("os"),
                   platforms.strings("arch"), platforms.strings("formats"),
                   reader.string("image"),
                   {str(name): _string(version, packages.at(str(name)))
                    for name, version in packages.value.items()},
                   reader.strings("products"))


@dataclass(frozen=True)
class ManifestRecord:
    """The manifest a bundle was fetched for: its path, its text as given, what it meant."""

    path: str
    given: Mapping[str, Any]
    resolved: Resolved

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {"path": self.path, "given": dict(self.given),
                "resolved": self.resolved.to_dict()}

    @classmethod
    def read(cls, reader: _Reader) -> ManifestRecord:
        return cls(reader.string("path"), reader.object("given").value,
                   Resolved.read(reader.object("resolved", (
                       "stack_version", "platforms", "image", "packages", "products"))))


@dataclass(frozen=True)
class BundleDescription:
    """The whole of bundle.json."""

    tool_version: str
    created: str
    manifest: ManifestRecord
    image: Image
    keys: tuple[Key, ...]
    notes: tuple[str, ...]
    items: tuple[Item, ...]
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        """The document, as written."""
        return {"format": self.format, "tool": {"name": "airgap", "version": self.tool_version},
                "created": self.created, "manifest": self.manifest.to_dict(),
                "image": self.image.to_dict(), "keys": [k.to_dict() for k in self.keys],
                "notes": list(self.notes), "items": [i.to_dict() for i in self.items]}

    @classmethod
    def from_dict(cls, document: Any) -> BundleDescription:
        """The description ``document`` holds, every field checked; raises
        :class:`DescriptionError` naming the first field that is wrong."""
        top = _Reader(document, "", ("format", "tool", "created", "manifest", "image", "keys",
                                     "notes", "items"))
        if top.raw("format", None) != FORMAT:
            raise DescriptionError("format", f"not an airgap bundle description of format "
                                             f"{FORMAT}")
        tool = top.object("tool", ("name", "version"))
        return cls(
            tool_version=tool.string("version"),
            created=top.string("created"),
            manifest=ManifestRecord.read(top.object("manifest", _names(ManifestRecord))),
            image=Image.read(top.object("image", _names(Image))),
            keys=top.objects("keys", Key.read, _names(Key)),
            notes=top.strings("notes"),
            items=top.objects("items", Item.read, _names(Item)),
        )

    @property
    def items_by_path(self) -> dict[str, Item]:
        """Every item, by its path."""
        return {item.path: item for item in self.items}

    def write(self, bundle: Path) -> None:
        """Write ``bundle/bundle.json`` atomically."""
        # default=str: YAML reads an unquoted date in the manifest as a date.
        atomic_write(bundle / DESCRIPTION,
                     json.dumps(self.to_dict(), indent=2, default=str) + "\n")


def read_description(bundle: Path) -> BundleDescription:
    """``bundle``'s bundle.json, or a :class:`BundleError` saying why it cannot be used."""
    path = bundle / DESCRIPTION
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{bundle} is not a complete airgap bundle: it has no {DESCRIPTION}",
                          details=["an interrupted `airgap fetch` leaves none: run it again"]
                          ) from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: cannot be read: {exc}") from None
    try:
        return BundleDescription.from_dict(document)
    except DescriptionError as exc:
        raise BundleError(f"{path} is damaged: {exc.message}",
                          details=[f"run `airgap verify {bundle}` to see what else is wrong"]
                          ) from None
