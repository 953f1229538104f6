"""Strong entity tags from the content, for ``airgap serve``.

Elastic Endpoint polls its artifact manifest and downloads it again only when the
``ETag`` changes, so the tag must change exactly when the bytes do: a file copied or
hard-linked anew with the same content keeps it, a new manifest under the old name gets
a new one. (Elastic's nginx example rewrites nginx's ``"<mtime>-<size>"`` tags, which
Endpoint does not take: these have no ``-``.) A tag is the file's SHA-512 in hex, kept in
memory per inode, size and modification time; ``If-None-Match`` is answered with
``304 Not Modified``, and ``If-Range`` is judged with the same tags.

Hashing a large file takes seconds, so it never holds up anything else: a digest already
known (:mod:`airgap.load.known`: bundle.json, or the index ``load --artifacts`` wrote) is
taken as it is; a small file is hashed at once; a large one on a pool of its own
(:data:`LARGE_HASHERS` at a time), so that a small request never waits behind it. One
file is hashed once at a time: requests that come meanwhile wait for that hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from airgap.load.known import KnownDigests
from airgap.trust.digests import CHUNK

MAX_CACHED = 4096
#: Files up to this size are hashed on the shared pool, as anything else the server does.
SMALL = 4 << 20
#: Large files hashed at the same time, at most (each is one core and one disk stream).
LARGE_HASHERS = 2

_Key = tuple[int, int, int, int]


class HashingStopped(Exception):
    """The server stops: a hash in progress gives up."""


class ContentTags:
    """The strong ``ETag`` of each file served, from its content (or a digest known)."""

    def __init__(self, known: KnownDigests | None = None) -> None:
        self._known = known
        self._cache: OrderedDict[_Key, str] = OrderedDict()
        self._pending: dict[_Key, asyncio.Future[str]] = {}  # touched on the loop only
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._large = ThreadPoolExecutor(max_workers=LARGE_HASHERS,
                                         thread_name_prefix="airgap-etag")
        self.hashed = 0  # files hashed so far (known digests and cached tags aside)

    async def tag_async(self, path: Path) -> str:
        """The tag of the file at ``path`` (quoted, as the header carries it); an
        ``OSError`` if it cannot be read."""
        loop = asyncio.get_running_loop()
        info = await asyncio.to_thread(path.stat)
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        cached = self._cached(key)
        if cached is not None:
            return cached
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._tag(path, info, key, loop))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._finished(key, done))
        # A client that goes away must not cancel the hash the others wait for.
        return await asyncio.shield(pending)

    async def _tag(self, path: Path, info: os.stat_result, key: _Key,
                   loop: asyncio.AbstractEventLoop) -> str:
        digest = await asyncio.to_thread(self._known.sha512, path, info) \
            if self._known is not None else None
        if digest is None:
            pool = self._large if info.st_size > SMALL else None  # None: the shared pool
            digest = await loop.run_in_executor(pool, self._hash, path)
        tag = f'"{digest}"'
        with self._lock:
            self._cache[key] = tag
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        return tag

    def _finished(self, key: _Key, done: asyncio.Future[str]) -> None:
        self._pending.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: the waiters, if any are left, get it too

    def _cached(self, key: _Key) -> str | None:
        with self._lock:
            known = self._cache.get(key)
            if known is not None:
                self._cache.move_to_end(key)
            return known

    def _hash(self, path: Path) -> str:
        digest = hashlib.sha512()
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        with path.open("rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                if self._stop.is_set():
                    raise HashingStopped(str(path))
                digest.update(view[:count])
        with self._lock:
            self.hashed += 1
        return digest.hexdigest()

    def close(self) -> None:
        """Stop: hashes in progress give up at their next chunk, queued ones never start."""
        self._stop.set()
        self._large.shutdown(wait=False, cancel_futures=True)


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
