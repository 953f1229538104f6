"""A front for the real docker-registry that behaves like docker.elastic.co.

It answers unauthenticated requests with ``401`` and a ``Bearer`` challenge naming a
token service on another port, which hands out anonymous tokens (or, when
``credentials`` are set, only to clients that present them with Basic auth), with a
lifetime so clients must refresh them. Blob GETs may be redirected to a "storage" host
(another port) as CDNs do; the storage host logs whether credentials reached it.
Faults (``files.Fault``) apply to blob transfers. Everything else is proxied, streaming
both ways (pushes too), to the real registry. ``token_uses`` makes every token die after
that many requests, whatever its announced lifetime (a token revoked mid-push), and
``grant_push=False`` hands out pull-only tokens, as docker.elastic.co does.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from tests.peers.files import Fault, Faults, break_connection
from tests.peers.net import BackgroundServer
from tests.peers.processes import Credentials, DockerRegistry

SERVICE = "token-service"
_REPO = re.compile(r"^/v2/(.+?)/(manifests|blobs|tags)/")
_PASS_HEADERS = ("Content-Type", "Content-Length", "Docker-Content-Digest", "Content-Range",
                 "Accept-Ranges", "ETag", "Location", "Range", "Docker-Upload-UUID")
_FORWARD_HEADERS = ("Accept", "Range", "Content-Type", "Content-Length", "Content-Range")
_WRITES = ("POST", "PUT", "PATCH", "DELETE")


class RegistryFront:
    """docker.elastic.co on loopback: Bearer tokens, redirects, faults, over a real registry."""

    def __init__(self, upstream: DockerRegistry, *, token_lifetime: int = 300,
                 credentials: Credentials | None = None, redirect_blobs: bool = False,
                 token_uses: int | None = None, grant_push: bool = True) -> None:
        self.upstream = upstream
        self.token_lifetime = token_lifetime
        self.credentials = credentials
        self.redirect_blobs = redirect_blobs
        self.token_uses = token_uses
        self.grant_push = grant_push
        self.faults = Faults()
        self.tokens: dict[str, tuple[float, str]] = {}
        self.uses: dict[str, int] = {}
        self.token_requests: list[dict[str, str]] = []
        self._tokens = BackgroundServer(self._token_app())
        self._storage = BackgroundServer(self._storage_app())
        self._front = BackgroundServer(self._front_app())

    @property
    def url(self) -> str:
        return self._front.url

    @property
    def host(self) -> str:
        return self._front.url.split("://", 1)[1]

    def start(self) -> RegistryFront:
        self._tokens.start()
        self._storage.start()
        self._front.start()
        return self

    def stop(self) -> None:
        self._front.stop()
        self._storage.stop()
        self._tokens.stop()

    # -- the token service -----------------------------------------------------------------

    def _token_app(self) -> web.Application:
        async def issue(request: web.Request) -> web.Response:
            self.token_requests.append(dict(request.query))
            if request.query.get("service") != SERVICE:
                return web.json_response({"errors": [{"code": "DENIED"}]}, status=400)
            if self.credentials is not None:
                expected = base64.b64encode(f"{self.credentials.username}:"
                                            f"{self.credentials.password}".encode()).decode()
                if request.headers.get("Authorization") != f"Basic {expected}":
                    return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]},
                                             status=401)
            token = secrets.token_urlsafe(24)
            scope = request.query.get("scope", "")
            if not self.grant_push:
                scope = scope.replace("pull,push", "pull")
            self.tokens[token] = (time.monotonic() + self.token_lifetime, scope)
            return web.json_response({"token": token, "access_token": token,
                                      "expires_in": self.token_lifetime})

        app = web.Application()
        app.router.add_get("/auth", issue)
        return app

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        token = header[7:]
        expires, scope = self.tokens.get(token, (0.0, ""))
        if time.monotonic() > expires:
            return False
        if self.token_uses is not None:
            self.uses[token] = self.uses.get(token, 0) + 1
            if self.uses[token] > self.token_uses:
                return False
        match = _REPO.match(request.path)
        if match is None:
            return True
        actions = scope.removeprefix(f"repository:{match.group(1)}:")
        if actions == scope:
            return False
        return request.method not in _WRITES or "push" in actions.split(",")

    def _challenge(self, request: web.Request) -> web.Response:
        params = f'realm="{self._tokens.url}/auth",service="{SERVICE}"'
        match = _REPO.match(request.path)
        if match:
            action = "pull,push" if request.method in _WRITES else "pull"
            params += f',scope="repository:{match.group(1)}:{action}"'
        return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401,
                                 headers={"WWW-Authenticate": f"Bearer {params}"})

    # -- the front ---------------------------------------------------------------------------

    def _front_app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            if not self._authorized(request):
                self.faults.record(request)
                return self._challenge(request)
            if self.redirect_blobs and "/blobs/" in request.path and request.method == "GET":
                self.faults.record(request)
                raise web.HTTPTemporaryRedirect(f"{self._storage.url}/storage{request.path}")
            return await self._proxy(request, request.path)

        app = web.Application()
        app.router.add_route("*", "/v2/{tail:.*}", handle)
        return app

    def _storage_app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._proxy(request, request.path.removeprefix("/storage"))

        app = web.Application()
        app.router.add_get("/storage/{tail:.*}", handle)
        return app

    async def _proxy(self, request: web.Request, path: str) -> web.StreamResponse:
        fault = self.faults.take(request.method, request.path, request.headers.get("Range"),
                                 request.headers.get("Authorization"))
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return web.Response(status=fault.status, text="injected\n", headers=headers)
        forward = {k: v for k, v in request.headers.items() if k in _FORWARD_HEADERS}
        if fault is not None and fault.kind == "ignore_range":
            forward.pop("Range", None)
        body = request.content if request.can_read_body else None
        async with aiohttp.ClientSession() as session, session.request(
                request.method, f"{self.upstream.url}{path}", params=request.query,
                headers=forward, data=body, allow_redirects=False) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for name in _PASS_HEADERS:
                if name in upstream.headers:
                    response.headers[name] = upstream.headers[name]
            location = response.headers.get("Location", "")
            if location.startswith(self.upstream.url):  # upload sessions go through us too
                response.headers["Location"] = self.url + location[len(self.upstream.url):]
            await response.prepare(request)
            if request.method == "HEAD":
                return response
            await _relay(request, response, upstream.content.iter_chunked(64 << 10), fault)
            return response


async def _relay(request: web.Request, response: web.StreamResponse,
                 chunks: AsyncIterator[bytes], fault: Fault | None) -> None:
    sent = 0
    async for chunk in chunks:
        if fault is not None and fault.kind in ("drop", "truncate", "stall") \
                and sent + len(chunk) > fault.after:
            await response.write(chunk[:max(fault.after - sent, 0)])
            await break_connection(request, response, fault)
            return
        if fault is not None and fault.kind == "corrupt" and sent == 0 and chunk:
            chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
        await response.write(chunk)
        sent += len(chunk)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
    await response.write_eof()
