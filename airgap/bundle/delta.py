"""Deltas: bundles that carry only what an earlier bundle, their base, does not hold.

A bundle's identity is the SHA-512 of its ``SHA512SUMS``, which names every file and its
hash (bundle.json's included): two bundles with the same identity hold the same bytes.
A delta's bundle.json (format 2) describes the complete target bundle, each file marked
``carried`` or ``base``, and names its base and its target by their identities; its
SHA512SUMS lists what it carries, so ``sha512sum -c`` works on it, and its operator
signature covers both. The target's own bundle.json and SHA512SUMS follow from the
delta's description alone (:func:`target_files`), which is how ``airgap merge`` writes a
bundle byte for byte the one a full fetch would have written, its signature included.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from airgap.bundle import layout
from airgap.bundle.description import (
    DELTA_FORMAT,
    FORMAT,
    BundleDescription,
    Delta,
    Item,
    read_description,
)
from airgap.bundle.sums import format_sums, parse_sums
from airgap.errors import BundleError, setting
from airgap.files import atomic_write

#: How many hex digits of an identity messages show: enough to tell bundles apart.
SHOWN = 32

Sign = Callable[[bytes], bytes]


def identity(sums: bytes) -> str:
    """The identity of the bundle whose SHA512SUMS holds ``sums``."""
    return hashlib.sha512(sums).hexdigest()


def shown(bundle_identity: str) -> str:
    """An identity as messages show it."""
    return f"sha512:{bundle_identity[:SHOWN]}"


def target_files(description: BundleDescription) -> tuple[str, str]:
    """The bundle.json and SHA512SUMS texts of the bundle ``description`` describes (for a
    delta: the complete bundle it makes, as a full fetch writes them)."""
    full = description
    if description.delta is not None:  # a delta of DELTA_FORMAT makes a bundle of FORMAT
        full = dataclasses.replace(
            description, format=FORMAT, delta=None,
            items=tuple(dataclasses.replace(i, origin=None) for i in description.items))
    text = full.text()
    sums = [(i.path, i.sha512) for i in full.items]
    sums.append((layout.DESCRIPTION, hashlib.sha512(text.encode()).hexdigest()))
    return text, format_sums(sums)


@dataclass(frozen=True)
class Base:
    """What a delta may leave out: the files of an earlier bundle, by content."""

    path: Path
    identity: str
    items: tuple[Item, ...]

    def by_sha512(self) -> dict[str, Item]:
        """Every file of the base, by its SHA-512."""
        return {item.sha512: item for item in self.items}


def read_base(path: Path) -> Base:
    """The base at ``path``: a bundle's folder, or just its bundle.json and SHA512SUMS (a
    delta's will do: it describes the bundle it makes). Raises :class:`BundleError`."""
    hint = [f"{setting('since')} takes the folder of an earlier bundle, or a folder "
            "holding just its bundle.json and SHA512SUMS"]
    try:
        sums_bytes = (path / layout.SUMS).read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: cannot read its {layout.SUMS}: {exc.strerror}",
                          details=hint) from None
    sums, problems = parse_sums(sums_bytes.decode("utf-8", errors="replace"))
    if problems:
        raise BundleError(f"{path / layout.SUMS} is damaged: {problems[0]}", details=hint)
    description = read_description(path)
    if layout.DESCRIPTION not in sums:
        raise BundleError(f"{path / layout.SUMS} does not list {layout.DESCRIPTION}",
                          details=hint)
    text = (path / layout.DESCRIPTION).read_bytes()
    if hashlib.sha512(text).hexdigest() != sums[layout.DESCRIPTION]:
        raise BundleError(f"{path}: {layout.DESCRIPTION} is not the one its {layout.SUMS} "
                          "lists", details=hint)
    if description.delta is not None:
        _text, target_sums = target_files(description)
        base_identity = identity(target_sums.encode())
        if base_identity != description.delta.target:
            raise BundleError(f"{path}: this delta's bundle.json does not make the bundle "
                              "it names", details=hint)
        return Base(path, base_identity, description.items)
    for item in description.items:
        if sums.get(item.path) != item.sha512:
            raise BundleError(f"{path}: {layout.SUMS} and {layout.DESCRIPTION} disagree on "
                              f"{item.path}", details=hint)
    return Base(path, identity(sums_bytes), description.items)


@dataclass(frozen=True)
class DeltaSummary:
    """What a delta carries, of all its target holds."""

    base: str
    target: str
    carried_files: int
    carried_size: int
    files: int
    size: int


def mark(target: BundleDescription, base: Base, signature: str | None,
         target_identity: str) -> BundleDescription:
    """``target`` as a delta of ``base``: every file the base holds (by SHA-512) comes
    from it, except the public keys, which stay so that a delta can be checked alone."""
    held = base.by_sha512()
    items = tuple(dataclasses.replace(
        item, origin="base" if item.sha512 in held and item.kind != "key" else "carried")
        for item in target.items)
    return dataclasses.replace(target, format=DELTA_FORMAT, items=items,
                               delta=Delta(base.identity, target_identity, signature))


def write_delta(folder: Path, target: BundleDescription, base: Base, sign: Sign | None
                ) -> tuple[DeltaSummary, list[str]]:
    """Write into ``folder`` (where a fetch staged the new bundle) bundle.json and
    SHA512SUMS, and SHA512SUMS.asc when ``sign`` is given, as a delta of ``base`` making
    ``target``; remove from it the files the delta leaves to the base (a fetch writes the
    small ones: manifests, checksums, signatures). Returns what it carries, by path."""
    _text, target_sums = target_files(target)
    target_identity = identity(target_sums.encode())
    signature = sign(target_sums.encode()).decode("ascii") if sign is not None else None
    delta = mark(target, base, signature, target_identity)
    carried = [i for i in delta.items if i.origin == "carried"]
    _remove(folder, (i.path for i in delta.items if i.origin == "base"))
    delta.write(folder)
    sums = [(i.path, i.sha512) for i in carried]
    sums.append((layout.DESCRIPTION, hashlib.sha512(delta.text().encode()).hexdigest()))
    text = format_sums(sums)
    if sign is not None:
        atomic_write(folder / layout.SUMS_SIGNATURE, sign(text.encode()))
    atomic_write(folder / layout.SUMS, text)
    return DeltaSummary(base.identity, target_identity, len(carried),
                        sum(i.size for i in carried), len(delta.items),
                        sum(i.size for i in delta.items)), [i.path for i in carried]


def _remove(root: Path, paths: Iterable[str]) -> None:
    """Remove the files a delta leaves to its base, and the folders they leave empty."""
    for path in paths:
        target = layout.inside(root, path)
        try:
            target.unlink()
        except FileNotFoundError:
            continue
        for parent in target.parents:
            if parent == root or any(parent.iterdir()):
                break
            parent.rmdir()
