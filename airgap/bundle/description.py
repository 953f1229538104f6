"""``bundle.json``: what a bundle holds, where each file came from and how it was checked.

A frozen model, read with every field checked (:meth:`BundleDescription.from_dict`
raises :class:`DescriptionError` naming the field, never a ``KeyError``) and written in
one place. ``format`` versions the whole document: a reader refuses a format it does not
know, and a field this format does not have. Format 2 adds the images besides the
registry's (``images``), Elastic Defend's manifests (``defend``) and, for a tailored
registry, what was added to its base (``image.tailored``, optional); format 1 bundles
still read. Format 3 is a delta (:mod:`airgap.bundle.delta`): format 2 plus ``delta`` and
each item's ``origin``, so that an airgap that knows only formats 1 and 2 refuses a delta
instead of taking it for a whole bundle. See docs/bundle.md.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from airgap.bundle.image_records import PLAIN_IMAGE, Image, PlatformImage, Tailored
from airgap.bundle.layout import DESCRIPTION, LOCK, STAGING, SUMS
from airgap.bundle.reading import DescriptionError
from airgap.bundle.reading import Reader as _Reader
from airgap.bundle.reading import names as _names
from airgap.bundle.reading import string as _string
from airgap.documents import DocumentError, parse_json
from airgap.errors import BundleError, DamagedBundleError, UsageError
from airgap.files import atomic_write, read_regular

FORMAT = 2
#: A delta's format: FORMAT's document, with ``delta`` and each item's ``origin``.
DELTA_FORMAT = 3
#: The formats this airgap reads.
FORMATS = (1, 2, DELTA_FORMAT)
#: Where a delta's file comes from: carried in the delta, or taken from its base.
ORIGINS = ("carried", "base")
#: What a file of the bundle can be.
KINDS = ("image-index", "image-manifest", "image-config", "image-layer", "image-blob",
         "oci-layout", "artifact", "artifact-checksum", "artifact-signature", "package",
         "package-signature", "key", "defend-manifest", "defend-artifact", "tool")
_TOP_KEYS = ("format", "tool", "created", "manifest", "image", "keys", "notes", "items")
_TOP_KEYS_2 = (*_TOP_KEYS, "images", "defend")
_TOP_KEYS_DELTA = (*_TOP_KEYS_2, "delta")
_SHA512 = re.compile(r"[0-9a-f]{128}\Z")
#: bundle.json of the full registry's few thousand packages is a few MB.
MAX_SIZE = 64 << 20

__all__ = ["BundleDescription", "DefendManifest", "Delta", "DescriptionError", "Image", "Item",
           "Key", "ManifestRecord", "PlatformImage", "Resolved", "Tailored", "Verification",
           "read_description"]


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
    listed_in: str | None = None  # a Defend artifact: the manifest that names it

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
    origin: str | None = None  # a delta's items only: one of ORIGINS

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        document = {"path": self.path, "kind": self.kind, "size": self.size,
                    "sha512": self.sha512, "source": self.source,
                    "verification": self.verification.to_dict()}
        if self.origin is not None:
            document["origin"] = self.origin
        return document

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
        origin = reader.optional_string("origin")
        if origin is not None and origin not in ORIGINS:
            raise DescriptionError(reader.at("origin"), f"{origin[:40]!r} is not one of "
                                                        f"{', '.join(ORIGINS)}")
        return cls(reader.string("path"), kind, reader.size("size"), sha512,
                   reader.optional_string("source"), verification, origin)


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


def utc_timestamp(when: datetime.datetime | None = None) -> str:
    """``when`` (default: now) as bundle.json writes times: ``2026-11-22T18:30:00Z``."""
    moment = (when or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_timestamp(text: str) -> datetime.datetime:
    """A time :func:`utc_timestamp` wrote; ValueError for anything else."""
    if not text.endswith("Z"):
        raise ValueError(text)
    return datetime.datetime.fromisoformat(text.removesuffix("Z") + "+00:00")


@dataclass(frozen=True)
class DefendManifest:
    """One of Elastic Defend's artifact manifests, as fetched: which Endpoint version it
    is for, the ``manifest_version`` endpoints report, when it was fetched."""

    endpoint_version: str
    path: str
    source: str
    manifest_version: str
    schema_version: str
    fetched: str
    artifacts: int

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def read(cls, reader: _Reader) -> DefendManifest:
        fetched = reader.string("fetched")
        try:
            parse_timestamp(fetched)
        except ValueError:
            raise DescriptionError(reader.at("fetched"), "not a time like "
                                                         "2026-11-22T18:30:00Z") from None
        return cls(reader.string("endpoint_version"), reader.string("path"),
                   reader.string("source"), reader.string("manifest_version"),
                   reader.string("schema_version"), fetched, reader.size("artifacts"))


@dataclass(frozen=True)
class Delta:
    """What makes a description a delta's: the bundle it completes and the one it makes.

    ``base`` and ``target`` are the SHA-512 of those bundles' SHA512SUMS, which name every
    file and its hash; ``target_signature`` is the operator's signature of the target's
    SHA512SUMS, which ``airgap merge`` writes as the new bundle's SHA512SUMS.asc.
    """

    base: str
    target: str
    target_signature: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {"base": self.base, "target": self.target,
                "target_signature": self.target_signature}

    @classmethod
    def read(cls, reader: _Reader) -> Delta:
        for key in ("base", "target"):
            if not _SHA512.match(reader.string(key)):
                raise DescriptionError(reader.at(key), "not a SHA-512 in hex")
        return cls(reader.string("base"), reader.string("target"),
                   reader.optional_string("target_signature"))


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
    images: tuple[Image, ...] = ()  # besides the registry's
    defend: tuple[DefendManifest, ...] = ()
    format: int = FORMAT
    delta: Delta | None = None  # DELTA_FORMAT only

    def to_dict(self) -> dict[str, Any]:
        """The document, as written."""
        document: dict[str, Any] = {
            "format": self.format, "tool": {"name": "airgap", "version": self.tool_version},
            "created": self.created, "manifest": self.manifest.to_dict(),
            "image": self.image.to_dict(), "keys": [k.to_dict() for k in self.keys],
            "notes": list(self.notes), "items": [i.to_dict() for i in self.items]}
        if self.format >= 2:
            document["images"] = [i.to_dict() for i in self.images]
            document["defend"] = [d.to_dict() for d in self.defend]
        if self.delta is not None:
            document["delta"] = self.delta.to_dict()
        return document

    @classmethod
    def from_dict(cls, document: Any) -> BundleDescription:
        """The description ``document`` holds, every field checked; raises
        :class:`DescriptionError` naming the first field that is wrong."""
        version = document.get("format") if isinstance(document, dict) else None
        if version not in FORMATS or isinstance(version, bool):
            _Reader(document, "")  # not even an object: say so
            raise DescriptionError("format", "not an airgap bundle description of format "
                                             f"{' or '.join(map(str, FORMATS))} (a newer "
                                             "airgap may read it)")
        top = _Reader(document, "", _TOP_KEYS_DELTA if version == DELTA_FORMAT else
                      _TOP_KEYS_2 if version >= 2 else _TOP_KEYS)
        tool = top.object("tool", ("name", "version"))
        items = top.objects("items", Item.read, _names(Item))
        delta = None
        if version == DELTA_FORMAT:
            delta = Delta.read(top.object("delta", _names(Delta)))
        for number, item in enumerate(items):
            if delta is not None and item.origin is None:
                raise DescriptionError(f"items[{number}].origin", "missing: each file of a "
                                                                  "delta says where it is")
            if delta is None and item.origin is not None:
                raise DescriptionError(f"items[{number}].origin", "not a field of format "
                                                                  f"{version}")
        images: tuple[Image, ...] = ()
        defend: tuple[DefendManifest, ...] = ()
        if version >= 2:
            images = top.objects("images", Image.read, PLAIN_IMAGE)
            defend = top.objects("defend", DefendManifest.read, _names(DefendManifest))
        return cls(
            tool_version=tool.string("version"),
            created=top.string("created"),
            manifest=ManifestRecord.read(top.object("manifest", _names(ManifestRecord))),
            image=Image.read(top.object("image", _names(Image) if version >= 2
                                        else PLAIN_IMAGE)),
            keys=top.objects("keys", Key.read, _names(Key)),
            notes=top.strings("notes"),
            items=items, images=images, defend=defend, format=version, delta=delta,
        )

    @property
    def all_images(self) -> tuple[Image, ...]:
        """The registry image first, then the others."""
        return (self.image, *self.images)

    @property
    def items_by_path(self) -> dict[str, Item]:
        """Every item, by its path."""
        return {item.path: item for item in self.items}

    def text(self) -> str:
        """bundle.json's text, exactly as :meth:`write` writes it."""
        # default=str: YAML reads an unquoted date in the manifest as a date.
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def write(self, bundle: Path) -> None:
        """Write ``bundle/bundle.json`` atomically."""
        atomic_write(bundle / DESCRIPTION, self.text())


#: What makes a folder a bundle, complete or in the making.
MARKS = (SUMS, DESCRIPTION, LOCK, STAGING)


class NotABundle(UsageError):
    """The folder given is no bundle at all (exit 2: the command line named it)."""


def refuse_not_a_bundle(bundle: Path) -> None:
    """Raise :class:`NotABundle` unless ``bundle`` holds one of :data:`MARKS`."""
    if not any((bundle / name).exists() for name in MARKS):
        raise NotABundle(f"{bundle} is not an airgap bundle: it has none of "
                         f"{', '.join(MARKS)}",
                         details=["give the folder `airgap fetch -o` wrote"])


def read_description(bundle: Path) -> BundleDescription:
    """``bundle``'s bundle.json, or a :class:`BundleError` saying why it cannot be used
    (:class:`DamagedBundleError`, exit 3, when it is there but not what it must be: too
    large, too deep, not JSON, not of this format)."""
    path = bundle / DESCRIPTION
    damaged = [f"run `airgap verify {bundle}` to see what else is wrong"]
    try:
        document = parse_json(read_regular(path, MAX_SIZE), max_size=MAX_SIZE)
    except FileNotFoundError:
        refuse_not_a_bundle(bundle)
        raise BundleError(f"{bundle} is not a complete airgap bundle: it has no {DESCRIPTION}",
                          details=["an interrupted `airgap fetch` leaves none: run it again"]
                          ) from None
    except DocumentError as exc:
        raise DamagedBundleError(f"{path} is damaged: {exc}", details=damaged) from None
    except OSError as exc:
        raise DamagedBundleError(f"{path} is damaged: {exc.strerror or exc}",
                                 details=damaged) from None
    try:
        return BundleDescription.from_dict(document)
    except DescriptionError as exc:
        raise DamagedBundleError(f"{path} is damaged: {exc.message}", details=damaged
                                 ) from None
