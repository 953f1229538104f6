"""Reading a large response body straight from its connection.

httpx hands a body over in pieces that have each gone through h11 and httpcore: a few
copies and Python calls per piece, about 0.8 CPU-second per GiB on a machine where the
SHA-256 of the same bytes costs 0.6, against 0.25 read this way (docs/benchmarks.md).
The bodies that carry the bundle's bytes (blobs, binaries, packages) are plain HTTP/1.1
bodies of a known length, so :func:`iter_body` takes the first piece from httpx
(whatever httpcore had already read past the headers, and h11 hands all of it over at
once) and then reads the rest of the announced length from the socket into one reused
buffer. The connection is closed
afterwards instead of going back to the pool, since h11 never saw the end of that body.

Anything else goes through httpx unchanged: chunked or unannounced lengths, HTTP/2, a
stream without a socket, and TLS carried inside a proxy's own TLS (whose socket holds
the outer layer).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import httpx

MIN_DIRECT = 1 << 20  # below this the pieces httpx gives are few: not worth the connection


def iter_body(response: httpx.Response, buffer: bytearray) -> Iterator[bytes | memoryview]:
    """The raw body of ``response`` (as ``iter_raw`` gives it), in pieces that are only
    valid until the next one is asked for (they may be views of ``buffer``).

    Errors are httpx's: ``ReadTimeout`` and ``ReadError`` for a failed read,
    ``RemoteProtocolError`` for a body that ends before its announced length.
    """
    length = _direct_length(response)
    pieces = response.iter_raw()
    if length is None:
        yield from pieces
        return
    sock = response.extensions["network_stream"].get_extra_info("socket")
    first = next(pieces, b"")
    if first:
        yield first
    remaining = length - len(first)
    timeout = response.request.extensions.get("timeout", {}).get("read")
    view = memoryview(buffer)
    while remaining > 0:
        count = _read(sock, view[:min(remaining, len(view))], timeout, response.request)
        if count == 0:
            raise httpx.RemoteProtocolError(
                f"peer closed connection without sending complete message body: received "
                f"{length - remaining} bytes, expected {length}", request=response.request)
        remaining -= count
        yield view[:count]


def _direct_length(response: httpx.Response) -> int | None:
    """The body's length when it can be read from the socket directly, else None."""
    if response.http_version != "HTTP/1.1" or "transfer-encoding" in response.headers:
        return None
    length = response.headers.get("content-length", "")
    if not length.isdigit() or int(length) < MIN_DIRECT:
        return None
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    sock = stream.get_extra_info("socket")
    # A memory-BIO TLS object means TLS in TLS (an HTTPS proxy): the socket below carries
    # the proxy's layer, not this body.
    if not isinstance(sock, socket.socket) or \
            isinstance(stream.get_extra_info("ssl_object"), ssl.SSLObject):
        return None
    return int(length)


def _read(sock: socket.socket, into: memoryview, timeout: float | None,
          request: httpx.Request) -> int:
    try:
        sock.settimeout(timeout)
        return sock.recv_into(into)
    except TimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from None
    except OSError as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from None
