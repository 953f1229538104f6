"""Large bodies read straight from the socket: the same bytes and errors as through httpx."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from airgap.net.body import MIN_DIRECT, iter_body
from airgap.net.transport import NetworkSettings, make_client
from tests.peers.net import BackgroundServer
from tests.peers.tls import make_certificate

BIG = MIN_DIRECT * 3 + 12_345
SMALL = MIN_DIRECT // 4


class Origin:
    """Serves ``/<size>`` as random bytes: whole, ``?chunked``, ``?cut=N`` (close after N
    bytes of the announced size) or ``?stall=N`` (stop sending after N); records the
    client port of every request, to tell a reused connection from a new one."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.data = os.urandom(BIG)
        self.ports: list[int] = []
        app = web.Application()
        app.router.add_get("/{size}", self.handle)
        self.server = BackgroundServer(app, ssl_context=tls)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        body = self.data[:int(request.match_info["size"])]
        response = web.StreamResponse()
        if "chunked" in request.query:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        response.content_type = "application/octet-stream"
        await response.prepare(request)
        stop = int(request.query.get("cut", request.query.get("stall", len(body))))
        for start in range(0, stop, 100_000):
            await response.write(body[start:min(start + 100_000, stop)])
        if stop < len(body):
            await asyncio.sleep(0.05)
            if "stall" in request.query:
                await asyncio.sleep(5)
            request.transport.close()  # type: ignore[union-attr]
            return response
        await response.write_eof()
        return response


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    server.server.start()
    yield server
    server.server.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client(NetworkSettings(read_timeout=1.0)) as http:
        yield http


def read(client: httpx.Client, url: str) -> tuple[bytes, set[type]]:
    """The body at ``url`` through iter_body, and the types of the pieces it came in."""
    body, kinds = bytearray(), set()
    with client.stream("GET", url) as response:
        for piece in iter_body(response, bytearray(64 << 10)):
            body += piece
            kinds.add(type(piece))
    return bytes(body), kinds


def test_a_large_body_comes_from_the_socket_whole(origin: Origin, client: httpx.Client) -> None:
    body, kinds = read(client, f"{origin.server.url}/{BIG}")
    assert body == origin.data
    assert memoryview in kinds  # read into the buffer, not handed over by httpx
    # h11 never saw that body end, so its connection is not used again.
    read(client, f"{origin.server.url}/{SMALL}")
    assert origin.ports[0] != origin.ports[1]


def test_small_and_chunked_bodies_go_through_httpx(origin: Origin, client: httpx.Client) -> None:
    for url, size in ((f"{origin.server.url}/{SMALL}", SMALL),
                      (f"{origin.server.url}/{BIG}?chunked", BIG)):
        body, kinds = read(client, url)
        assert body == origin.data[:size]
        assert kinds == {bytes}
    assert origin.ports[0] == origin.ports[1]  # kept alive, reused


def test_a_body_cut_short_is_a_protocol_error(origin: Origin, client: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match=f"expected {BIG}"):
        read(client, f"{origin.server.url}/{BIG}?cut={MIN_DIRECT + 500_000}")


def test_a_stalled_body_times_out(origin: Origin, client: httpx.Client) -> None:
    with pytest.raises(httpx.ReadTimeout):
        read(client, f"{origin.server.url}/{BIG}?stall={MIN_DIRECT + 500_000}")


def test_over_tls_the_body_is_decrypted(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Origin(tls=context)
    server.server.start()
    try:
        with make_client(NetworkSettings(ca_certs=(cert,))) as http:
            body, kinds = read(http, f"{server.server.url}/{BIG}")
        assert body == server.data
        assert memoryview in kinds
    finally:
        server.server.stop()
