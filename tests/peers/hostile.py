"""A server that answers like the one behind it, except where a test makes it lie.

``HostileFront(upstream_url)`` relays every request to the real peer (the registry, the
EPR stand-in, the artifact server) unless a rule matches its path: then it gives the
canned answer instead: a status, headers and a body (HTML with 200, JSON nested 100,000
deep, an absurd Content-Length), or a redirect (to ``file://``, to itself in a loop).
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.peers.net import BackgroundServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class Lie:
    """One canned answer; ``body`` may be a function of the request's path."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Callable[[str], bytes] = b""
    times: int = -1  # requests it answers; -1: every one


def nested_json(depth: int = 100_000) -> bytes:
    """``[[[…]]]`` ``depth`` deep: what exhausts a recursive parser."""
    return b"[" * depth + b"]" * depth


def redirect(location: str) -> Lie:
    return Lie(302, {"Location": location})


class HostileFront:
    """Relays to ``upstream`` (a base URL), lying where told; ``url`` is its own base."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._rules: list[tuple[str, Lie, list[int]]] = []
        self._lock = threading.Lock()
        self.asked: list[str] = []
        self._server = BackgroundServer(self._app())

    @property
    def url(self) -> str:
        return self._server.url

    def lie(self, pattern: str, answer: Lie) -> None:
        """Answer requests whose path (query included) matches ``pattern`` with ``answer``."""
        with self._lock:
            self._rules.append((pattern, answer, [answer.times]))

    def _take(self, path: str) -> Lie | None:
        with self._lock:
            self.asked.append(path)
            for pattern, answer, left in self._rules:
                if fnmatch.fnmatchcase(path, pattern) and left[0] != 0:
                    left[0] -= 1
                    return answer
        return None

    def _app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            path = request.path_qs
            answer = self._take(path)
            if answer is None:
                return await self._relay(request, path)
            body = answer.body(path) if callable(answer.body) else answer.body
            announced = answer.headers.get("Content-Length")
            if announced is None:
                return web.Response(status=answer.status, body=body, headers=answer.headers)
            # A length that is not the body's: sent as it is, then the connection closes.
            response = web.StreamResponse(status=answer.status, headers={
                k: v for k, v in answer.headers.items() if k != "Content-Length"})
            response.content_length = int(announced)
            await response.prepare(request)
            await response.write(body)
            if request.transport is not None:
                request.transport.close()
            return response

        app = web.Application()
        app.router.add_route("*", "/{path:.*}", handle)
        return app

    async def _relay(self, request: web.Request, path: str) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with aiohttp.ClientSession(auto_decompress=False) as session, \
                session.request(request.method, self.upstream + path, headers=headers,
                                data=await request.read(), allow_redirects=False) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP})
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(1 << 16):
                await response.write(chunk)
            await response.write_eof()
            return response

    def start(self) -> HostileFront:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> HostileFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
