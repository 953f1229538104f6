"""Checksum files: Elastic's ``.sha512`` beside each artifact, and ``SHA512SUMS``."""

from __future__ import annotations

import re
from pathlib import Path

from airgap.errors import ChecksumMismatchError

MAX_CHECKSUM_FILE = 4096
_HEX128 = re.compile(r"^[0-9a-fA-F]{128}\Z")


def parse_elastic_sha512(text: str, expected_name: str, *, source: str) -> str:
    """The hex digest in an Elastic ``.sha512`` file, read the way Elastic Agent reads it.

    Two whitespace-separated fields: 128 hex digits, then the file name (a leading ``*``,
    binary mode, is stripped), which must be ``expected_name``.
    """
    fields = text.split()
    if len(fields) != 2:
        raise ChecksumMismatchError(f"{source}: expected `<sha512>  <file name>`, got "
                                    f"{len(fields)} field(s)")
    digest, name = fields
    if not _HEX128.match(digest):
        raise ChecksumMismatchError(f"{source}: {digest[:20]!r}... is not a SHA-512 digest")
    name = name.removeprefix("*")
    if name != expected_name:
        raise ChecksumMismatchError(f"{source}: names {name!r}, not {expected_name!r}: it is "
                                    "the checksum of another file")
    return digest.lower()


def read_elastic_sha512(path: Path, expected_name: str) -> str:
    """:func:`parse_elastic_sha512` on a file, refusing anything too large to be one."""
    if path.stat().st_size > MAX_CHECKSUM_FILE:
        raise ChecksumMismatchError(f"{expected_name}.sha512: too large to be a checksum file")
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise ChecksumMismatchError(f"{expected_name}.sha512: not a text file") from None
    return parse_elastic_sha512(text, expected_name, source=f"{expected_name}.sha512")
