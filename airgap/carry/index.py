"""The index every volume of a split bundle carries, the same in each, signed once.

It names the bundle (its identity: the SHA-512 of its SHA512SUMS), how many volumes there
are, and every piece: its short name, the volume that holds it, the file and the offset
it holds, its size and its SHA-512. A volume's number follows from the pieces it holds,
which the index assigns, so nothing outside the signed index says which volume it is.
The index is hostile until checked: :meth:`VolumeIndex.from_bytes` refuses any field it
does not expect, a path that leaves the bundle, and pieces that do not tile their file.

The index carries its own SHA-512 (``index_sha512``, of its canonical content without
that field), which needs no key: a bit flipped on the medium is damage of that volume,
never a volume of "another split". It is also the identity of the set of volumes. It
proves nothing against someone who rewrites the index whole: the signature does that.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airgap.bundle import layout
from airgap.documents import DocumentError, parse_json
from airgap.errors import VerificationError

INDEX = "airgap-volume.json"
INDEX_SIGNATURE = "airgap-volume.json.asc"
FORMAT = 1
KIND = "airgap-volumes"
MAX_INDEX = 64 << 20
MAX_VOLUMES = 99_999
PIECE_NAME = re.compile(r"[0-9]{6}\Z")
_SHA512 = re.compile(r"[0-9a-f]{128}\Z")
_DIGEST = "index_sha512"
_TOP = ("format", "kind", "bundle", "delta_of", "created", "volumes", "volume_size",
        "block", "max_file", "pieces", _DIGEST)
_PIECE = ("name", "volume", "file", "offset", "size", "sha512")


class DamagedIndexError(VerificationError):
    """A volume's index is damaged, or not one airgap wrote."""


@dataclass(frozen=True)
class Piece:
    """One plain file of a volume: ``size`` bytes of ``file`` from ``offset``."""

    name: str
    volume: int
    file: str
    offset: int
    size: int
    sha512: str

    def to_dict(self) -> dict[str, Any]:
        """The index's form."""
        return {"name": self.name, "volume": self.volume, "file": self.file,
                "offset": self.offset, "size": self.size, "sha512": self.sha512}

    def describe(self) -> str:
        """Which bytes of which file, as messages say it."""
        if self.offset == 0:
            return f"{self.file} (bytes 0-{max(self.size - 1, 0)})" if self.size else self.file
        return f"{self.file} (bytes {self.offset}-{self.offset + self.size - 1})"


@dataclass(frozen=True)
class VolumeIndex:
    """The whole index."""

    bundle: str
    created: str
    volumes: int
    volume_size: int
    block: int
    max_file: int | None
    pieces: tuple[Piece, ...]
    delta_of: str | None = None

    def _content(self) -> dict[str, Any]:
        return {"format": FORMAT, "kind": KIND, "bundle": self.bundle,
                "delta_of": self.delta_of, "created": self.created,
                "volumes": self.volumes, "volume_size": self.volume_size,
                "block": self.block, "max_file": self.max_file,
                "pieces": [p.to_dict() for p in self.pieces]}

    @property
    def identity(self) -> str:
        """The identity of this set of volumes: the index's own SHA-512 (``index_sha512``),
        the same in every volume of one split, another for each split."""
        return _digest(self._content())

    def to_bytes(self) -> bytes:
        """The index file's bytes, its own SHA-512 included."""
        content = self._content()
        return (json.dumps({**content, _DIGEST: _digest(content)}, indent=1) + "\n").encode()

    def of_volume(self, number: int) -> tuple[Piece, ...]:
        """The pieces volume ``number`` holds."""
        return tuple(p for p in self.pieces if p.volume == number)

    def by_name(self) -> dict[str, Piece]:
        """Every piece, by its name."""
        return {p.name: p for p in self.pieces}

    def files(self) -> dict[str, list[Piece]]:
        """Every file, with its pieces in order."""
        found: dict[str, list[Piece]] = defaultdict(list)
        for piece in self.pieces:
            found[piece.file].append(piece)
        return {path: sorted(pieces, key=lambda p: p.offset)
                for path, pieces in sorted(found.items())}

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> VolumeIndex:
        """The index ``data`` holds, every field checked; raises :class:`DamagedIndexError`."""
        try:
            document = parse_json(data, max_size=MAX_INDEX)
        except DocumentError as exc:
            raise DamagedIndexError(f"{where}: not an airgap volume index: {exc}") from None
        top = _object(document, where, _TOP)
        if top.get("format") != FORMAT or top.get("kind") != KIND:
            raise DamagedIndexError(f"{where}: not an airgap volume index of format {FORMAT}")
        # Before any field is read: a flipped bit is damage, whatever field it is in.
        if _sha512(top, _DIGEST, where) != _digest({k: v for k, v in top.items()
                                                    if k != _DIGEST}):
            raise DamagedIndexError(f"{where} is damaged: its content differs from the "
                                    f"SHA-512 it records ({_DIGEST})")
        volumes = _count(top, "volumes", where, 1, MAX_VOLUMES)
        pieces = tuple(_piece(value, f"{where}: pieces[{i}]", volumes)
                       for i, value in enumerate(_list(top, "pieces", where)))
        index = cls(_sha512(top, "bundle", where), _string(top, "created", where), volumes,
                    _count(top, "volume_size", where, 1), _count(top, "block", where, 1),
                    None if top.get("max_file") is None else _count(top, "max_file", where, 1),
                    pieces,
                    None if top.get("delta_of") is None else _sha512(top, "delta_of", where))
        _check_tiling(index, where)
        return index


def _digest(content: Mapping[str, Any]) -> str:
    """The SHA-512 of an index's content in canonical form (keys sorted, no spaces)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha512(canonical.encode()).hexdigest()


def _check_tiling(index: VolumeIndex, where: str) -> None:
    names = [p.name for p in index.pieces]
    if len(set(names)) != len(names):
        raise DamagedIndexError(f"{where}: a piece name is listed twice")
    for number in range(1, index.volumes + 1):
        if not index.of_volume(number):
            raise DamagedIndexError(f"{where}: volume {number} holds no piece")
    files = index.files()
    if layout.SUMS not in files:
        raise DamagedIndexError(f"{where}: the pieces hold no {layout.SUMS}")
    for path, pieces in files.items():
        end = 0
        for piece in pieces:
            if piece.offset != end:
                raise DamagedIndexError(f"{where}: the pieces of {path} do not follow each other "
                                  f"(one starts at byte {piece.offset}, not {end})")
            end += piece.size


def _object(value: Any, where: str, keys: Sequence[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DamagedIndexError(f"{where}: expected an object")
    for key in value:
        if key not in keys:
            raise DamagedIndexError(f"{where}: {str(key)[:40]!r} is not a field of a volume index")
    for key in keys:
        if key not in value:
            raise DamagedIndexError(f"{where}: {key} is missing")
    return value


def _list(value: Mapping[str, Any], key: str, where: str) -> list[Any]:
    found = value[key]
    if not isinstance(found, list):
        raise DamagedIndexError(f"{where}: {key} is not a list")
    return found


def _string(value: Mapping[str, Any], key: str, where: str) -> str:
    found = value[key]
    if not isinstance(found, str):
        raise DamagedIndexError(f"{where}: {key} is not a string")
    return found


def _sha512(value: Mapping[str, Any], key: str, where: str) -> str:
    found = _string(value, key, where)
    if not _SHA512.match(found):
        raise DamagedIndexError(f"{where}: {key} is not a SHA-512 in hex")
    return found


def _count(value: Mapping[str, Any], key: str, where: str, least: int = 0,
           most: int = 1 << 60) -> int:
    found = value[key]
    if not isinstance(found, int) or isinstance(found, bool) or not least <= found <= most:
        raise DamagedIndexError(f"{where}: {key} is not a number from {least} to {most}")
    return found


def _piece(value: Any, where: str, volumes: int) -> Piece:
    piece = _object(value, where, _PIECE)
    name = _string(piece, "name", where)
    if not PIECE_NAME.match(name):
        raise DamagedIndexError(f"{where}: {name[:40]!r} is not a piece name")
    path = _string(piece, "file", where)
    if not _safe_path(path):
        raise DamagedIndexError(f"{where}: {path[:80]!r} is not a path inside a bundle")
    return Piece(name, _count(piece, "volume", where, 1, volumes), path,
                 _count(piece, "offset", where), _count(piece, "size", where),
                 _sha512(piece, "sha512", where))


def _safe_path(path: str) -> bool:
    """A relative path that stays inside the bundle and names a file a bundle may hold."""
    if not path or path.startswith("/") or any(c in path for c in "\\\0\n\r"):
        return False
    parts = path.split("/")
    return all(p not in ("", ".", "..") for p in parts) and parts[0] != layout.LOCK \
        and not parts[0].startswith(".airgap")
