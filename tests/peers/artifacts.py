"""A stand-in for artifacts.elastic.co, laid out as Elastic's release manifests list it.

Serves ``ROOT`` at ``/downloads/``: ``<dir>/<name>-<version>-<suffix>`` with
``<file>.sha512`` (``<128 hex>  <basename>``, no trailing newline, as Elastic writes it)
and ``<file>.asc`` (a detached signature by a throwaway key) beside each file.
Supports Range and HEAD, optional redirects to a second "storage" host, and faults.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from aiohttp import web

from tests.peers.files import Faults, safe_join, serve_file, storage_app
from tests.peers.gpgkeys import SigningKey
from tests.peers.net import BackgroundServer


def write_random(path: Path, size: int) -> str:
    """Fill ``path`` with ``size`` random bytes; return their sha512."""
    digest = hashlib.sha512()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 1 << 20))
            digest.update(block)
            out.write(block)
            remaining -= len(block)
    return digest.hexdigest()


def write_sha512(path: Path, hexdigest: str | None = None, name: str | None = None) -> Path:
    """Write Elastic's ``.sha512`` for ``path``: two fields, two spaces, no newline."""
    if hexdigest is None:
        digest = hashlib.sha512()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        hexdigest = digest.hexdigest()
    checksum = path.with_name(path.name + ".sha512")
    checksum.write_text(f"{hexdigest}  {name or path.name}")
    return checksum


class ArtifactServer:
    """artifacts.elastic.co on loopback; ``url`` is the downloads base (ends with ``/``)."""

    def __init__(self, root: Path, signer: SigningKey, *, redirect: bool = False) -> None:
        self.root = root
        self.signer = signer
        self.faults = Faults()
        self.redirect = redirect
        root.mkdir(parents=True, exist_ok=True)
        self._storage = BackgroundServer(storage_app(root, self.faults))
        self._server = BackgroundServer(self._app())

    @property
    def url(self) -> str:
        """The downloads base, like ``https://artifacts.elastic.co/downloads/``."""
        return f"{self._server.url}/downloads/"

    def _app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            relative = request.match_info["path"]
            if self.redirect:
                self.faults.record(request)
                raise web.HTTPFound(f"{self._storage.url}/{relative}")
            return await serve_file(request, safe_join(self.root, relative), self.faults)

        app = web.Application()
        app.router.add_route("GET", "/downloads/{path:.+}", handle)
        app.router.add_route("HEAD", "/downloads/{path:.+}", handle)
        return app

    def start(self) -> ArtifactServer:
        """Start both hosts."""
        self._storage.start()
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop both hosts."""
        self._server.stop()
        self._storage.stop()

    def publish(self, relative: str, size: int = 4096) -> Path:
        """Put a random file of ``size`` bytes at ``relative`` with its .sha512 and .asc."""
        path = safe_join(self.root, relative)
        write_sha512(path, write_random(path, size))
        self.signer.sign(path)
        return path

    def publish_paths(self, relatives: list[str], size: int = 4096) -> list[Path]:
        """Publish each of ``relatives`` (paths below the downloads base)."""
        return [self.publish(relative, size) for relative in relatives]
