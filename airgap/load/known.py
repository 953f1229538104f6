"""The SHA-512 of the files ``airgap serve`` serves, where it is known already, so that a
restart does not hash gigabytes again before the first answer.

Two places know: a bundle's ``bundle.json`` (every file's size and SHA-512), and the index
``load --artifacts`` writes beside the tree it lays out (:data:`INDEX`: each file's size,
modification time and SHA-512, as it was when laid out). A known digest is used only for a
file that cannot have changed since it was recorded: the same size and modification time
as the index says, or, in a bundle, the same size and not modified after ``bundle.json``
(a fetch writes bundle.json after every file it puts in place). Anything else is hashed,
and a damaged or missing record only means more hashing. The digests serve as entity
tags, never as proof of anything: ``airgap verify`` is what checks files.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from airgap.bundle.description import BundleDescription, read_description
from airgap.bundle.layout import DESCRIPTION, DOWNLOADS, SECURITY
from airgap.documents import DocumentError, parse_json
from airgap.errors import AirgapError
from airgap.files import atomic_write, read_regular

#: The index ``load --artifacts`` writes at the top of the tree (never served).
INDEX = ".airgap-sha512.json"
MAX_INDEX = 64 << 20
_SHA512 = re.compile(r"[0-9a-f]{128}\Z")
_FORMAT = 1


@dataclass(frozen=True)
class _Record:
    size: int
    mtime_ns: int | None  # exact (an index), or None: not after ``limit`` (a bundle)
    sha512: str


class KnownDigests:
    """The digests known for files below the served roots, by resolved path; re-read
    when the record they come from changes (a new load while serving)."""

    def __init__(self, source: Path | None, bundle: Path | None = None) -> None:
        self._source = source  # the index or bundle.json, watched for changes
        self._bundle = bundle
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._records: dict[Path, _Record] = {}
        self._limit = 0

    @classmethod
    def of_tree(cls, tree: Path) -> KnownDigests:
        """What the index ``load --artifacts`` wrote in ``tree`` knows."""
        return cls(tree / INDEX)

    @classmethod
    def of_bundle(cls, bundle: Path) -> KnownDigests:
        """What ``bundle``'s bundle.json knows."""
        return cls(bundle / DESCRIPTION, bundle)

    def sha512(self, path: Path, info: os.stat_result) -> str | None:
        """The SHA-512 of the file at ``path`` (resolved) if known and still true."""
        with self._lock:
            self._refresh()
            record = self._records.get(path)
            if record is None or record.size != info.st_size:
                return None
            if record.mtime_ns is None:
                return record.sha512 if info.st_mtime_ns <= self._limit else None
            return record.sha512 if record.mtime_ns == info.st_mtime_ns else None

    def _refresh(self) -> None:
        if self._source is None:
            return
        try:
            info = self._source.stat()
        except OSError:
            self._seen, self._records = None, {}
            return
        seen = (info.st_ino, info.st_size, info.st_mtime_ns)
        if seen == self._seen:
            return
        self._seen, self._limit = seen, info.st_mtime_ns
        self._records = _bundle_records(self._bundle) if self._bundle is not None \
            else _index_records(self._source)


def _bundle_records(bundle: Path) -> dict[Path, _Record]:
    try:
        description = read_description(bundle)
    except AirgapError:
        return {}
    root = bundle.resolve()
    served = (f"{DOWNLOADS}/", f"{SECURITY}/{DOWNLOADS}/")
    return {root / item.path: _Record(item.size, None, item.sha512)
            for item in description.items if item.path.startswith(served)}


def _index_records(index: Path) -> dict[Path, _Record]:
    try:
        document = parse_json(read_regular(index, MAX_INDEX), max_size=MAX_INDEX)
    except (OSError, DocumentError, UnicodeDecodeError):
        return {}
    files = document.get("files") if isinstance(document, dict) and \
        document.get("format") == _FORMAT else None
    if not isinstance(files, dict):
        return {}
    root = index.parent.resolve()
    records = {}
    for name, raw in files.items():
        record = _record(raw)
        parts = str(name).split("/")
        if record is not None and not any(p in ("", ".", "..") for p in parts):
            records[root.joinpath(*parts)] = record
    return records


def _record(raw: Any) -> _Record | None:
    if not isinstance(raw, dict):
        return None
    size, mtime, sha512 = raw.get("size"), raw.get("mtime_ns"), raw.get("sha512")
    if not (_count(size) and _count(mtime) and isinstance(sha512, str)
            and _SHA512.match(sha512)):
        return None
    return _Record(size, mtime, sha512)


def _count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def write_index(tree: Path, laid_out: Iterable[tuple[str, str]]) -> int:
    """Record in ``tree``'s index each file just laid out (``(path below tree,
    sha512)``) as it is now, keeping what the index knew of files still unchanged; return
    how many files it knows."""
    keep: dict[str, dict[str, Any]] = {}
    old = _index_records(tree / INDEX)
    root = tree.resolve()
    for path, record in old.items():
        try:
            info = path.stat()
        except OSError:
            continue
        if (info.st_size, info.st_mtime_ns) == (record.size, record.mtime_ns):
            keep[path.relative_to(root).as_posix()] = {
                "size": record.size, "mtime_ns": record.mtime_ns, "sha512": record.sha512}
    for name, sha512 in laid_out:
        try:
            info = (tree / name).stat()
        except FileNotFoundError:  # not laid out after all: it will be hashed if it comes
            continue
        keep[name] = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha512": sha512}
    atomic_write(tree / INDEX, _dumps({"format": _FORMAT, "files": dict(sorted(keep.items()))}))
    return len(keep)


def laid_out_files(description: BundleDescription) -> list[tuple[str, str]]:
    """Each file ``load --artifacts`` puts in the tree, by its path there, with its
    SHA-512 (the binaries from downloads/, Elastic Defend's from security/downloads/)."""
    found = []
    for item in description.items:
        for prefix in (f"{DOWNLOADS}/", f"{SECURITY}/{DOWNLOADS}/"):
            if item.path.startswith(prefix):
                found.append((item.path.removeprefix(prefix), item.sha512))
                break
    return found


def _dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=1) + "\n"
