"""A stand-in for artifacts.security.elastic.co: Elastic Defend's protection artifacts.

Serves ``ROOT`` from ``/``, as the real host does: each Endpoint version's manifest at
``/downloads/endpoint/manifest/artifacts-<version>.zip`` (a zip holding ``manifest.json``
and ``manifest.sig``, an RSA-SHA256 signature of it by a throwaway key, as Kibana's
telemetry code checks its own manifests from the same host), and every artifact at the
``relative_url`` the manifest gives it: zlib-compressed, with ``encoded_*`` (as served)
and ``decoded_*`` (decompressed) SHA-256 and sizes (the entry fields of kibana's endpoint
manifest schema). Where the artifacts lie below ``/downloads/endpoint/`` is this
stand-in's choice (the real manifests name their own paths). Answers carry an ``ETag``;
faults as the other stand-ins inject them.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.peers.files import Faults, safe_join, serve_file
from tests.peers.net import BackgroundServer

MANIFEST_DIR = "downloads/endpoint/manifest"


def manifest_path(version: str) -> str:
    """Where Endpoint ``version``'s manifest lies below the root."""
    return f"{MANIFEST_DIR}/artifacts-{version}.zip"


def make_manifest_zip(document: dict[str, Any], key: rsa.RSAPrivateKey | None = None,
                      extra: dict[str, bytes] | None = None) -> bytes:
    """A manifest zip: ``manifest.json`` (and its signature when ``key`` is given)."""
    data = json.dumps(document, indent=2).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", data)
        if key is not None:
            archive.writestr("manifest.sig", key.sign(data, padding.PKCS1v15(),
                                                      hashes.SHA256()))
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


class DefendServer:
    """artifacts.security.elastic.co on loopback; ``url`` is its root (ends with ``/``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.faults = Faults()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._server = BackgroundServer(self._app())

    @property
    def url(self) -> str:
        """The root, like ``https://artifacts.security.elastic.co/``."""
        return f"{self._server.url}/"

    def _app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await serve_file(request, safe_join(self.root, request.match_info["path"]),
                                    self.faults)

        app = web.Application()
        app.router.add_route("GET", "/{path:.+}", handle)
        app.router.add_route("HEAD", "/{path:.+}", handle)
        return app

    def start(self) -> DefendServer:
        """Start listening."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self._server.stop()

    def add_artifact(self, identifier: str, content: bytes, *,
                     compression: str = "zlib") -> dict[str, Any]:
        """Store one artifact and return its manifest entry."""
        encoded = zlib.compress(content) if compression == "zlib" else content
        encoded_sha = hashlib.sha256(encoded).hexdigest()
        relative = f"/downloads/endpoint/artifacts/{identifier}/{encoded_sha}"
        path = safe_join(self.root, relative[1:])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encoded)
        return {"relative_url": relative, "compression_algorithm": compression,
                "encryption_algorithm": "none",
                "decoded_sha256": hashlib.sha256(content).hexdigest(),
                "decoded_size": len(content), "encoded_sha256": encoded_sha,
                "encoded_size": len(encoded)}

    def publish(self, version: str, manifest_version: str,
                artifacts: dict[str, bytes], *, signed: bool = True) -> dict[str, Any]:
        """Publish Endpoint ``version``'s manifest listing ``artifacts`` (name -> content);
        return the manifest document."""
        document = {"manifest_version": manifest_version, "schema_version": "v1",
                    "artifacts": {name: self.add_artifact(name, content)
                                  for name, content in artifacts.items()}}
        self.write_manifest(version, document, signed=signed)
        return document

    def write_manifest(self, version: str, document: dict[str, Any], *,
                       signed: bool = True) -> Path:
        """Put ``document`` (signed, unless not ``signed``: a mirror that dropped
        manifest.sig) as Endpoint ``version``'s manifest."""
        path = safe_join(self.root, manifest_path(version))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_manifest_zip(document, self.key if signed else None))
        return path

    def artifact_file(self, entry: dict[str, Any]) -> Path:
        """Where the artifact an entry names lies on this server."""
        return safe_join(self.root, str(entry["relative_url"])[1:])
