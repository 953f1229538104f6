"""One transfer of the download engine: its state across retries, and what each answer
of a server must say of it (where a resumed range starts, the sizes it announces, the
validator a resume sends), and the check of the bytes against what the item expects.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx

from airgap.errors import ChecksumMismatchError, ServerResponseError
from airgap.net.transport import refuse_html
from airgap.trust.digests import Digests, Hasher

if TYPE_CHECKING:
    from airgap.net.download import Download

CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)\Z")
UNSATISFIED_RANGE = re.compile(r"^bytes \*/(\d+)\Z")


class Transfer:
    """The mutable state of one item across retries: its hasher, resume validator, and
    the size to reach (the item's, else the total a server named in a ``Content-Range``)."""

    def __init__(self, item: Download, hasher: Hasher) -> None:
        self.item = item
        self.hasher = hasher
        self.validator: str | None = None
        self.total: int | None = item.size
        self.range_end: int | None = None  # where the range a 206 announced ends
        self.furthest = 0  # the most bytes any attempt got, restarts included
        self.resumed = 0  # bytes a partial download held when this run started
        self.sized = item.size is not None  # whether the reporter knows the total

    def restart(self) -> None:
        """Start the file over: the ``.part`` and what was hashed of it go."""
        self.item.part.unlink(missing_ok=True)
        self.hasher = Hasher(sha256=self.item.sha256 is not None)
        self.validator = None
        self.total = self.item.size
        self.range_end = None
        self.resumed = 0


def check_expected(item: Download, digests: Digests) -> list[str]:
    """Refuse bytes that are not what the item expects; return what that proved."""
    if item.size is not None and digests.size != item.size:
        raise ChecksumMismatchError(f"{item.label}: got {digests.size} bytes, "
                                    f"{item.size} expected")
    if item.sha256 is not None and digests.sha256 != item.sha256:
        raise ChecksumMismatchError(f"{item.label}: digest mismatch: the bytes hash to "
                                    f"sha256:{digests.sha256}, not sha256:{item.sha256}; "
                                    "the server sent something else than it announced")
    return ["sha256 ok"] if item.sha256 is not None else []


def check_resume(response: httpx.Response, transfer: Transfer) -> None:
    """A ``206``'s ``Content-Range`` must start where the ``.part`` ends, stay inside the
    file, and name the size expected (within the limit): it becomes the size to reach."""
    item, offset = transfer.item, transfer.hasher.size
    match = CONTENT_RANGE.match(response.headers.get("content-range", ""))
    if match is None or int(match.group(1)) != offset:
        raise ServerResponseError(f"{item.url}: the server resumed at the wrong place "
                                  f"(asked for byte {offset}, got "
                                  f"{response.headers.get('content-range')!r})")
    if match.group(3) == "*":
        return
    total = int(match.group(3))
    if int(match.group(2)) >= total:
        raise ServerResponseError(f"{item.url}: the server sent a range past the end of "
                                  f"the file ({response.headers['content-range']!r})")
    if item.size is not None and total != item.size:
        raise ServerResponseError(f"{item.url}: the server says the file has {total} "
                                  f"bytes, but {item.size} are expected")
    if total > item.max_size:
        raise ServerResponseError(f"{item.url}: the server says the file has {total} "
                                  f"bytes, more than the {item.max_size} allowed")
    transfer.total = total  # a short range (bytes N-M/T, M < T-1) is not the end
    transfer.range_end = int(match.group(2)) + 1


def check_headers(response: httpx.Response, transfer: Transfer) -> None:
    """No HTML for a file; a ``Content-Length`` that fits the size expected and the
    limit; the validator (a strong ETag, else Last-Modified) a resume will send."""
    item = transfer.item
    if not item.html_ok:
        refuse_html(item.url, response.headers, "file")
    length = response.headers.get("content-length")
    if length is not None and length.isdigit():
        end = transfer.hasher.size + int(length)
        expected = transfer.total
        # A 206 may stop short of the end (the rest comes with the next request).
        short_ok = response.status_code == 206
        if expected is not None and (end > expected or (end < expected and not short_ok)):
            raise ServerResponseError(f"{item.url}: the server announces {end} bytes, "
                                      f"but {expected} are expected")
        if end > item.max_size:
            raise ServerResponseError(f"{item.url}: the server announces {end} bytes, "
                                      f"more than the {item.max_size} allowed")
    if not transfer.validator:
        etag = response.headers.get("etag", "")
        transfer.validator = etag if etag and not etag.startswith("W/") else \
            response.headers.get("last-modified")
