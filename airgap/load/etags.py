"""Strong entity tags from the content, for ``airgap serve``.

Elastic Endpoint polls its artifact manifest and downloads it again only when the
``ETag`` changes, so the tag must change exactly when the bytes do: a file copied or
hard-linked anew with the same content keeps it, a new manifest under the old name gets
a new one. (Elastic's nginx example rewrites nginx's ``"<mtime>-<size>"`` tags, which
Endpoint does not take: these have no ``-``.) A tag is the file's SHA-256, computed once
per inode, size and modification time and kept in memory; ``If-None-Match`` is answered
with ``304 Not Modified``, and ``If-Range`` is judged with the same tags.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from pathlib import Path

from airgap.trust.digests import Hasher, hash_file

MAX_CACHED = 4096


class ContentTags:
    """The strong ``ETag`` of each file served, from its content."""

    def __init__(self) -> None:
        self._known: OrderedDict[tuple[int, int, int, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def tag(self, path: Path) -> str:
        """The tag of the file at ``path`` (quoted, as the header carries it)."""
        info = path.stat()
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            known = self._known.get(key)
            if known is not None:
                self._known.move_to_end(key)
                return known
        digests = hash_file(path, hasher=Hasher(sha256=True))
        tag = f'"{digests.sha256}"'
        with self._lock:
            self._known[key] = tag
            while len(self._known) > MAX_CACHED:
                self._known.popitem(last=False)
        return tag

    async def tag_async(self, path: Path) -> str:
        """:meth:`tag` in a worker thread: hashing a large file must not stall the server."""
        return await asyncio.to_thread(self.tag, path)


def _tags(header: str) -> list[str]:
    """The entity tags of an ``If-None-Match`` or ``If-Range`` value, weakness dropped."""
    return [part.strip().removeprefix("W/") for part in header.split(",") if part.strip()]


def not_modified(if_none_match: str | None, tag: str) -> bool:
    """Whether ``If-None-Match`` names ``tag`` (or ``*``): the client has these bytes."""
    if not if_none_match:
        return False
    tags = _tags(if_none_match)
    return "*" in tags or tag in tags


def range_applies(if_range: str | None, tag: str) -> bool:
    """Whether a ``Range`` may be honoured: no ``If-Range``, or one naming ``tag`` (a
    date or another tag means the client's copy is of other bytes: send them whole)."""
    return not if_range or if_range.strip() == tag
