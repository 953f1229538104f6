"""Serving files the way object stores do (Range, HEAD), with faults on demand.

The artifact server and the EPR stand-in both serve their files through
:func:`serve_file`. A test injects a :class:`Fault` for a path pattern; the next
``times`` requests that match misbehave in that way, then the file is served normally.
Every request is logged, so tests can count what a client asked for.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

CHUNK = 64 * 1024
FAULT_KINDS = ("status", "drop", "truncate", "slow", "stall", "ignore_range", "short_range",
               "corrupt", "html")


@dataclass
class Fault:
    """One way to misbehave.

    - ``status``: answer ``status`` (with ``Retry-After`` when given) instead of the file;
    - ``drop``: send ``after`` bytes of the body, then reset the connection;
    - ``truncate``: send ``after`` bytes, then close the connection cleanly, short of
      the announced ``Content-Length``;
    - ``slow``: pause ``delay`` seconds between 64 KiB chunks;
    - ``stall``: send ``after`` bytes, then hang for ``delay`` seconds;
    - ``ignore_range``: answer ``200`` with the whole file even when a Range was asked
      (and, when ``after`` is given, close the connection after that many bytes);
    - ``short_range``: answer a Range with only its first ``after`` bytes (a complete
      ``206``, ``bytes N-M/T`` with ``M < T-1``), as servers that cap ranges do;
    - ``corrupt``: send the whole file with one byte changed;
    - ``html``: answer ``200`` with an HTML page, as a captive portal or proxy does.
    """

    kind: str
    times: int = 1  # requests it applies to; -1 means every one
    after: int = 0
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {FAULT_KINDS}")


@dataclass(frozen=True)
class LoggedRequest:
    """What a client asked for, and what it got."""

    method: str
    path: str
    range: str | None
    fault: str | None
    authorization: str | None = None


class Faults:
    """Fault rules by path pattern (``fnmatch``), plus the request log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[tuple[str, Fault]] = []
        self.log: list[LoggedRequest] = []

    def inject(self, pattern: str, fault: Fault) -> None:
        """Make requests for paths matching ``pattern`` misbehave as ``fault`` says."""
        with self._lock:
            self._rules.append((pattern, fault))

    def clear(self) -> None:
        """Remove every rule and forget the log."""
        with self._lock:
            self._rules.clear()
            self.log.clear()

    def take(self, method: str, path: str, range_header: str | None,
             authorization: str | None = None) -> Fault | None:
        """The fault for this request, if any (used up as it applies), and log it."""
        with self._lock:
            chosen = None
            for pattern, fault in self._rules:
                if fault.times != 0 and fnmatch.fnmatchcase(path, pattern):
                    if fault.times > 0:
                        fault.times -= 1
                    chosen = fault
                    break
            self.log.append(LoggedRequest(method, path, range_header,
                                          chosen.kind if chosen else None, authorization))
            return chosen

    def record(self, request: web.Request) -> None:
        """Log a request that is answered without faults (a redirect, an API call)."""
        with self._lock:
            self.log.append(LoggedRequest(request.method, request.path,
                                          request.headers.get("Range"), None,
                                          request.headers.get("Authorization")))

    def requests(self, pattern: str = "*", method: str | None = None) -> list[LoggedRequest]:
        """The logged requests whose path matches ``pattern``."""
        with self._lock:
            return [r for r in self.log if fnmatch.fnmatchcase(r.path, pattern)
                    and (method is None or r.method == method)]


_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


def content_type(path: Path) -> str:
    """The content type object stores give Elastic's files."""
    name = path.name
    if name.endswith((".sha512", ".txt")):
        return "text/plain"
    if name.endswith((".asc", ".sig")):
        return "application/pgp-signature"
    if name.endswith(".zip"):
        return "application/zip"
    if name.endswith((".tar.gz", ".tgz")):
        return "application/gzip"
    if name.endswith(".json"):
        return "application/json"
    return "application/octet-stream"


async def serve_file(request: web.Request, path: Path, faults: Faults) -> web.StreamResponse:
    """Answer a GET or HEAD for ``path``, misbehaving if a fault rule says so."""
    fault = faults.take(request.method, request.path, request.headers.get("Range"),
                        request.headers.get("Authorization"))
    if not path.is_file():
        raise web.HTTPNotFound(text="not found\n")
    if fault is None:
        response = web.FileResponse(path, chunk_size=CHUNK)
        response.content_type = content_type(path)
        return response
    if fault.kind == "html":
        return web.Response(text="<html><body>Please log in</body></html>",
                            content_type="text/html")
    if fault.kind == "status":
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        return web.Response(status=fault.status, text=f"injected {fault.status}\n",
                            headers=headers)
    return await _stream_with_fault(request, path, fault)


async def _stream_with_fault(request: web.Request, path: Path,
                             fault: Fault) -> web.StreamResponse:
    size = path.stat().st_size
    start, end = 0, size - 1
    match = _RANGE_RE.match(request.headers.get("Range", ""))
    response = web.StreamResponse(status=200)
    if match and fault.kind != "ignore_range":
        start = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
        if start >= size:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        if fault.kind == "short_range":
            end = min(end, start + max(fault.after, 1) - 1)
        response.set_status(206)
        response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    response.content_length = end - start + 1
    response.content_type = content_type(path)
    response.headers["Accept-Ranges"] = "bytes"
    await response.prepare(request)
    if request.method == "HEAD":
        return response

    sent = 0
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            limit = CHUNK
            if fault.kind in ("drop", "truncate", "stall") or \
                    (fault.kind == "ignore_range" and fault.after):
                limit = min(CHUNK, max(fault.after - sent, 0))
                if limit == 0:
                    return await break_connection(request, response, fault)
            data = handle.read(min(limit, remaining))
            if fault.kind == "corrupt" and sent == 0 and data:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            await response.write(data)
            sent += len(data)
            remaining -= len(data)
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay)
    await response.write_eof()
    return response


async def break_connection(request: web.Request, response: web.StreamResponse,
                           fault: Fault) -> web.StreamResponse:
    """End the answer as ``fault`` says: stall then close, drop (a RST), or cut short."""
    transport = request.transport
    assert transport is not None
    await asyncio.sleep(0.05)  # let the bytes already written reach the client
    if fault.kind == "stall":
        await asyncio.sleep(fault.delay)
        transport.close()
    elif fault.kind == "drop":
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends a RST, as a dropped connection does.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    return response


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that would leave ``root``."""
    target = (root / relative).resolve()
    if target != root.resolve() and root.resolve() not in target.parents:
        raise web.HTTPNotFound(text="not found\n")
    return target


def storage_app(root: Path, faults: Faults) -> web.Application:
    """A bare object store serving ``root`` at ``/<path>``: the target of redirects."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await serve_file(request, safe_join(root, request.match_info["path"]), faults)

    app = web.Application()
    app.router.add_route("GET", "/{path:.+}", handle)
    app.router.add_route("HEAD", "/{path:.+}", handle)
    return app
