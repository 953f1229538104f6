"""``SHA512SUMS``: the bundle's index, in the format ``sha512sum`` writes and reads."""

from __future__ import annotations

import re
from collections.abc import Iterable

from airgap.bundle.layout import SUMS
from airgap.errors import BundleError

_SUM_LINE = re.compile(r"^([0-9a-f]{128}) [ *](.+)\Z")


def format_sums(entries: Iterable[tuple[str, str]]) -> str:
    """SHA512SUMS text: ``<hex>  <path>`` lines sorted by path, as ``sha512sum`` writes."""
    lines = []
    for path, digest in sorted(entries):
        if "\n" in path or "\\" in path:
            raise BundleError(f"{path!r}: a name sha512sum cannot list")
        lines.append(f"{digest}  {path}\n")
    return "".join(lines)


def parse_sums(text: str) -> tuple[dict[str, str], list[str]]:
    """The entries of a SHA512SUMS file, and a message for each line that is not one."""
    entries: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        match = _SUM_LINE.match(line)
        if match is None:
            problems.append(f"{SUMS} line {number}: not `<sha512>  <path>`")
            continue
        digest, path = match.groups()
        if path in entries:
            problems.append(f"{SUMS} line {number}: {path} is listed twice")
        entries[path] = digest
    return entries, problems
