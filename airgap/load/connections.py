"""The connections of ``airgap serve``: accepted here, bounded, timed out, counted.

aiohttp answers the requests; this module decides which connections it gets to answer:

- at most ``max_connections`` at once, a number kept below the process's open-file limit
  (each connection may hold its socket and the file it sends), so that accepting never
  runs out of descriptors;
- a connection must send its request headers within ``header_timeout`` of connecting (or
  of its first byte after a keep-alive pause), and may sit idle between requests for
  ``keepalive_timeout``; a TLS handshake gets ``header_timeout`` too;
- a connection whose client takes none of its answer for ``send_timeout`` (its window
  closed: it stopped reading) is cut off, so that a reader that stalls cannot hold its
  place, its socket and its file for ever; progress is what the peer acknowledged, from
  the kernel (``TCP_INFO``, Linux), which also sees what ``sendfile`` sends;
- at the cap, the connection that has waited longest without a request in progress makes
  room for the new one (a slow client loses its place, an agent downloading never does);
  only when every connection is busy is the newcomer refused with a 503;
- a connection that fails costs one count, never a traceback (:mod:`airgap.load.failures`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airgap.errors import UsageError, setting
from airgap.load.failures import FailureCount
from airgap.load.sendqueue import buffered, sending
from airgap.reporter import Reporter

_MAX_DEFAULT = 4096
_RESERVED_FILES = 64  # the event loop, logs, the files a request opens before it sends
_REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
            b"Retry-After: 5\r\n\r\n")


@dataclass(frozen=True)
class Limits:
    """How many connections, and how long each may take before it sends a request."""

    max_connections: int | None = None  # None: as many as the open-file limit allows
    header_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    send_timeout: float = 60.0
    report_interval: float = 60.0


def connection_cap(requested: int | None) -> int:
    """The connection cap: ``requested``, or the most the open-file limit allows (at most
    4096); :class:`UsageError` when ``requested`` is more than the limit allows."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = _MAX_DEFAULT * 4 if soft == resource.RLIM_INFINITY else \
        max(1, (soft - _RESERVED_FILES) // 2)
    if requested is None:
        return min(ceiling, _MAX_DEFAULT)
    if requested > ceiling:
        raise UsageError(f"{setting('max_connections')} {requested}: the open-file limit "
                         f"({soft}) allows at most {ceiling} (each connection may hold its "
                         "socket and a file)", details=["raise the limit (`ulimit -n`), or "
                                                        "ask for fewer"])
    return requested


@dataclass(eq=False)
class _Connection:
    """One accepted connection, from its accept to its end."""

    accepted: float
    task: asyncio.Task[Any] | None = None
    transport: asyncio.BaseTransport | None = None
    busy: int = 0            # requests in progress
    requests: int = 0        # requests answered
    waiting_since: float = 0.0  # when it last had nothing in progress
    first_byte: float | None = None  # of the request it is sending now
    acked: int | None = None  # bytes the client acknowledged, when last looked at
    progress: float = 0.0     # when it last took some of its answer (or had none waiting)

    def deadline(self, limits: Limits) -> float | None:
        """When it must have sent a complete request, or None while one is in progress."""
        if self.busy:
            return None
        if self.requests == 0:
            return self.accepted + limits.header_timeout
        idle = self.waiting_since + limits.keepalive_timeout
        if self.first_byte is not None:
            return min(idle, self.first_byte + limits.header_timeout)
        return idle


class _Tracked(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the connection's bookkeeping."""

    def __init__(self, guard: ConnectionGuard, entry: _Connection,
                 inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._entry = entry
        self._inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._entry.transport = transport
        self._guard.by_transport[transport] = self._entry
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._entry.busy and self._entry.first_byte is None:
            self._entry.first_byte = time.monotonic()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.forget(self._entry)
        self._inner.connection_lost(exc)


@dataclass
class ConnectionGuard:
    """Accepts on ``sockets`` and hands each connection to ``protocol()`` (aiohttp's
    server), keeping to ``limits``; :meth:`request_started` and :meth:`request_ended`
    are called by the application around each request."""

    sockets: list[socket.socket]
    protocol: Callable[[], asyncio.Protocol] | None  # set before start()
    limits: Limits
    ssl_context: ssl.SSLContext | None
    reporter: Reporter
    cap: int = 0
    connections: set[_Connection] = field(default_factory=set)
    by_transport: dict[Any, _Connection] = field(default_factory=dict)
    failures: FailureCount = field(init=False)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.failures = FailureCount(self.reporter, self.limits.report_interval)

    def start(self) -> None:
        """Start accepting (on the running loop) and watching the deadlines."""
        self.cap = connection_cap(self.limits.max_connections)
        if self.protocol is None:
            raise RuntimeError("a ConnectionGuard needs its protocol before it starts")
        self.failures.quiet_loggers()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.failures.loop_exception)
        self._tasks = [loop.create_task(self._accept(s)) for s in self.sockets]
        self._tasks.append(loop.create_task(self._watch()))

    async def stop(self) -> None:
        """Stop accepting and watching; close every connection not yet closed; report the
        failures not yet reported."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock in self.sockets:
            sock.close()
        for entry in list(self.connections):
            self._close(entry)
        self.failures.report(final=True)
        self.failures.restore_loggers()
        asyncio.get_running_loop().set_exception_handler(None)

    # -- the application's side ------------------------------------------------------------

    def request_started(self, transport: Any) -> None:
        """A request's headers are in: its connection is busy, no deadline runs."""
        entry = self.by_transport.get(transport)
        if entry is not None:
            entry.busy += 1
            entry.progress = time.monotonic()

    def request_ended(self, transport: Any) -> None:
        """A request is answered: its connection waits for the next one."""
        entry = self.by_transport.get(transport)
        if entry is not None:
            entry.busy = max(0, entry.busy - 1)
            entry.requests += 1
            entry.waiting_since = time.monotonic()
            entry.first_byte = None

    # -- connections -----------------------------------------------------------------------

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, _ = await loop.sock_accept(listening)
            except OSError as exc:
                # Out of descriptors (another part of the machine used them) or a client
                # that gave up in the backlog: count it, breathe, go on.
                self.failures.fail("accept failed: " + (exc.strerror or type(exc).__name__))
                await asyncio.sleep(0.1 if exc.errno in (errno.EMFILE, errno.ENFILE) else 0)
                continue
            if len(self.connections) >= self.cap and not self._make_room():
                self._refuse(connection)
                continue
            entry = _Connection(time.monotonic())
            self.connections.add(entry)
            entry.task = loop.create_task(self._open(connection, entry))

    async def _open(self, connection: socket.socket, entry: _Connection) -> None:
        loop = asyncio.get_running_loop()
        protocol = self.protocol
        assert protocol is not None
        try:
            await loop.connect_accepted_socket(
                lambda: _Tracked(self, entry, protocol()), connection,
                ssl=self.ssl_context,
                ssl_handshake_timeout=self.limits.header_timeout if self.ssl_context else None)
        except asyncio.CancelledError:
            connection.close()
            self.forget(entry)
            raise
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            connection.close()
            self.forget(entry)
            self.failures.fail("TLS handshake failed" if self.ssl_context else
                               f"connection failed ({type(exc).__name__})")

    def forget(self, entry: _Connection) -> None:
        """The connection is gone."""
        self.connections.discard(entry)
        if entry.transport is not None:
            self.by_transport.pop(entry.transport, None)

    def _close(self, entry: _Connection) -> None:
        if entry.transport is not None:
            entry.transport.close()
        elif entry.task is not None:
            entry.task.cancel()  # still in its TLS handshake
        self.forget(entry)

    def _make_room(self) -> bool:
        """Close the connection that has waited longest with no request in progress (a
        TLS handshake counts as waiting); False when every connection is busy."""
        waiting = [e for e in self.connections if not e.busy]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda e: e.waiting_since if e.requests else e.accepted)
        if oldest.requests == 0 or oldest.first_byte is not None:
            self.failures.fail(f"closed to make room: {self.cap} connections open, the cap, "
                               "and it had not sent its request")
        self._close(oldest)
        return True

    def _refuse(self, connection: socket.socket) -> None:
        if self.ssl_context is None:
            with contextlib.suppress(OSError):
                connection.setblocking(False)
                connection.send(_REFUSED)
        connection.close()
        self.failures.fail(f"refused: {self.cap} connections open (the cap), every one busy")

    async def _watch(self) -> None:
        tick = max(0.05, min(1.0, self.limits.header_timeout / 4,
                             self.limits.keepalive_timeout / 4, self.limits.send_timeout / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for entry in list(self.connections):
                if self._stalled(entry, now):
                    self.failures.fail(f"timed out: the client took none of its answer "
                                       f"for {self.limits.send_timeout:g} s")
                    self._abort(entry)
                    continue
                deadline = entry.deadline(self.limits)
                if deadline is None or now < deadline or entry.transport is None:
                    continue
                if entry.requests == 0 or entry.first_byte is not None:
                    self.failures.fail(f"timed out: no complete request within "
                                       f"{self.limits.header_timeout:g} s")
                self._close(entry)  # else: an idle keep-alive connection, closed as usual
            self.failures.report_when_due(now)

    def _stalled(self, entry: _Connection, now: float) -> bool:
        """True when bytes wait to go to the client and it has acknowledged none of them
        for ``send_timeout`` (a server still preparing an answer has none waiting)."""
        transport = entry.transport
        if transport is None or transport.is_closing():
            return False
        sent = sending(transport)
        if sent is None:
            return False
        acked, queued = sent
        waiting = queued > 0 or buffered(transport) > 0
        if not waiting or acked != entry.acked or not entry.progress:
            entry.acked, entry.progress = acked, now
            return False
        return now - entry.progress >= self.limits.send_timeout

    def _abort(self, entry: _Connection) -> None:
        """End a connection whose client reads nothing: from the kernel's side, so that
        the write waiting on it (``sendfile`` included, which holds the socket apart
        from its transport) fails and aiohttp closes the transport as after any broken
        pipe. ``close()`` would wait for ever to flush what the client does not read."""
        sock = entry.transport.get_extra_info("socket") if entry.transport else None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            # Closed, the socket is reset: what is queued for the client is dropped.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        entry.busy, entry.progress = 0, 0.0  # counted once; forgotten when it is lost
        self.failures.cut_off += 1


def listen(bind: str, port: int, backlog: int = 1024) -> list[socket.socket]:
    """Listening sockets for ``bind`` (every interface for ``""``) and ``port`` (0: a free
    one, the same for every address)."""
    found = socket.getaddrinfo(bind or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(
                (f, k, p, c, a) for f, k, p, c, a in found):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
