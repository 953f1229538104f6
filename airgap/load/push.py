"""Push the bundle's image, every platform and its index, to a private registry.

Blobs first (a ``HEAD`` skips those the registry already has; small ones go up in one
``PUT``, large ones in ``PATCH`` chunks), then each platform's manifest by digest, and
the index last, under the tag: a registry never holds a manifest whose blobs it lacks.
Every manifest keeps its bytes, so its digest is the bundle's.

A blob's body streams from the bundle and cannot be sent twice, so a ``401`` to it (a
token that expired or was revoked mid-push) is answered by fetching fresh credentials
and starting that blob's upload over from a new ``POST``. Credentials go only to the
registry's own origin, never to an upload location on another host.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from airgap import oci
from airgap.bundle.layout import IMAGES
from airgap.errors import (
    AirgapError,
    AuthenticationError,
    NotFoundError,
    ServerResponseError,
    UsageError,
    setting,
)
from airgap.net.credentials import find_credentials
from airgap.net.download import Downloader
from airgap.net.transport import Reauthenticated, login_hint, open_stream
from airgap.net.urls import host_port, split_url
from airgap.oci.registry import RegistryClient

MONOLITHIC_LIMIT = 128 << 20
CHUNK = 64 << 20
PHASE = "push"


@dataclass(frozen=True)
class PushTarget:
    """Where to push: ``registry.corp:5000/elastic`` -> host and namespace; ``scheme``
    when the registry was given as a URL (``http://`` is then honoured, never upgraded)."""

    host: str
    namespace: str
    scheme: str | None = None

    @classmethod
    def parse(cls, text: str) -> PushTarget:
        """``[http://|https://]HOST[:PORT][/NAMESPACE]``, as the registry is given."""
        given = text.strip()
        scheme = next((s for s in ("http", "https") if given.startswith(f"{s}://")), None)
        rest = given.removeprefix(f"{scheme}://").strip("/") if scheme else given.strip("/")
        host, _, namespace = rest.partition("/")
        parts = split_url(f"https://{host}/")
        valid_host = parts is not None and bool(parts.hostname) and parts.port != 0 \
            and parts.username is None
        if not valid_host or " " in rest or any(c.isupper() for c in namespace):
            raise UsageError(f"{setting('registry')} {text!r}: expected "
                             "[http://|https://]HOST[:PORT][/NAMESPACE], like "
                             "registry.corp:5000/elastic")
        return cls(host, namespace, scheme)

    def repository(self, source: str) -> str:
        """The repository path to push ``source`` (``package-registry/distribution``) to."""
        return f"{self.namespace}/{source}" if self.namespace else source


@dataclass(frozen=True)
class PushResult:
    """What was pushed where."""

    reference: oci.ImageReference
    digest: str
    uploaded: int
    skipped: int
    uploaded_bytes: int


def registry_url(client: httpx.Client, target: PushTarget, insecure: bool) -> str:
    """The registry's base URL: the scheme given (``http://`` only with ``insecure``);
    for a bare host ``https://``, or with ``insecure`` plain HTTP when it speaks no TLS
    (as docker treats an insecure registry)."""
    if target.scheme == "http":
        if not insecure:
            raise UsageError(f"{setting('registry')} http://{target.host}: plain HTTP needs "
                             f"{setting('insecure')}",
                             details=["or give the registry's https:// address"])
        return f"http://{target.host}"
    if target.scheme == "https" or not insecure:
        return f"https://{target.host}"
    try:
        client.get(f"https://{target.host}/v2/", timeout=5).close()
        return f"https://{target.host}"
    except httpx.TransportError:
        return f"http://{target.host}"


def connect_registry(target: PushTarget, source_repository: str, downloader: Downloader,
                     insecure: bool) -> RegistryClient:
    """A client for the repository to push to, once the registry has answered and let
    these credentials start an upload (which is then cancelled): refused credentials are
    found before the bundle is verified, not after."""
    base = registry_url(downloader.client, target, insecure)
    client = RegistryClient(downloader, base, target.repository(source_repository),
                            find_credentials(target.host), push=True)
    client.ping()
    location = downloader.retrying(lambda: _start_upload(client), f"{base} upload")
    with contextlib.suppress(AirgapError):  # a registry that keeps it: it expires
        open_stream(downloader.client, location, auth=client.auth, method="DELETE",
                    accept_status=frozenset({404, 405})).close()
    return client


def push_image(bundle: Path, client: RegistryClient, tag: str,
               reference: str | None = None) -> PushResult:
    """Push the bundle's image (the one ``reference`` names, when it holds several) with
    ``client``; return the reference it can be pulled by."""
    layout = oci.Layout(bundle / IMAGES)
    top, manifests = oci.image_platforms(layout, reference)
    downloader = client.downloader
    blobs: dict[str, oci.Descriptor] = {}
    for manifest in manifests:
        image = oci.parse_image_manifest(layout.read_json(manifest.digest), manifest.digest)
        blobs.update({b.digest: b for b in image.blobs})
    tasks = [functools.partial(_push_blob, client, layout, blob) for blob in blobs.values()]
    sent = downloader.run_all(tasks, what="blob uploads")
    if top.media_type in oci.INDEX_TYPES:
        for manifest in manifests:
            _put_manifest(client, layout, manifest, manifest.digest)
    _put_manifest(client, layout, top, tag)
    pushed = oci.ImageReference(host_port(client.base), client.repository, tag)
    return PushResult(pushed, top.digest, sum(1 for s in sent if s), sum(1 for s in sent
                                                                            if not s),
                      sum(blobs[d].size for d, s in zip(blobs, sent, strict=True) if s))


def _push_blob(client: RegistryClient, layout: oci.Layout, blob: oci.Descriptor) -> bool:
    """Upload one blob unless the registry has it; True when it was sent."""
    reporter = client.downloader.reporter
    key = f"push {blob.digest}"
    if _exists(client, blob):
        reporter.task_kept(key, f"blob {blob.digest}", blob.size, phase=PHASE,
                           detail="already in the registry")
        return False
    reporter.task_started(key, f"blob {blob.digest}", blob.size, phase=PHASE)
    attempts = 0
    refused = 0  # restarts for a 401 in a row, with no chunk accepted in between

    def accepted() -> None:
        nonlocal refused
        refused = 0

    def attempt() -> None:
        nonlocal attempts, refused
        if attempts:
            reporter.task_restarted(key, 0)
        attempts += 1
        try:
            _upload(client, layout, blob, key, accepted)
        except Reauthenticated:
            refused += 1
            if refused > 1:
                raise AuthenticationError(
                    f"upload of {blob.digest} to {client.base}: the registry refused fresh "
                    "credentials too (401)", details=[login_hint(client.base)]) from None
            raise

    client.downloader.retrying(attempt, f"upload of {blob.digest}")
    reporter.task_finished(key, "sent", "digest accepted")
    return True


def _upload(client: RegistryClient, layout: oci.Layout, blob: oci.Descriptor, key: str,
            accepted: Callable[[], None]) -> None:
    """One upload of ``blob``, from a new upload session to the closing ``PUT``;
    ``accepted`` is called for each chunk the registry took."""
    location = _start_upload(client)
    path = layout.blob(blob.digest)
    if blob.size <= MONOLITHIC_LIMIT:
        _send(client, "PUT", _with_digest(location, blob.digest), path, 0, blob.size, key)
        return
    offset = 0
    while offset < blob.size:
        length = min(CHUNK, blob.size - offset)
        location = _send(client, "PATCH", location, path, offset, length, key)
        accepted()
        offset += length
    _send(client, "PUT", _with_digest(location, blob.digest), path, 0, 0, key)


def _exists(client: RegistryClient, blob: oci.Descriptor) -> bool:
    def head() -> bool:
        try:
            response = open_stream(client.downloader.client, client.url("blobs", blob.digest),
                                   auth=client.auth, method="HEAD")
        except NotFoundError:
            return False
        response.close()
        return True

    return client.downloader.retrying(head, f"HEAD {blob.digest}")


def _start_upload(client: RegistryClient) -> str:
    url = f"{client.base}/v2/{client.repository}/blobs/uploads/"
    response = _request(client, "POST", url)
    location = response.headers.get("location")
    if response.status_code != 202 or not location:
        raise ServerResponseError(f"{url}: expected 202 with a Location, got "
                                  f"{response.status_code}")
    return str(httpx.URL(url).join(location))


def _with_digest(location: str, digest: str) -> str:
    return str(httpx.URL(location).copy_merge_params({"digest": digest}))


def _send(client: RegistryClient, method: str, url: str, path: Path, offset: int, length: int,
          key: str) -> str:
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
    if method == "PATCH":
        headers["Content-Range"] = f"{offset}-{offset + length - 1}"
    reporter = client.downloader.reporter

    def body() -> Iterator[bytes]:
        with path.open("rb") as handle:
            handle.seek(offset)
            remaining = length
            while remaining:
                chunk = handle.read(min(1 << 20, remaining))
                if not chunk:
                    raise AirgapError(f"{path} is shorter than its descriptor says")
                remaining -= len(chunk)
                reporter.task_advanced(key, len(chunk))
                yield chunk

    response = _request(client, method, url, headers=headers, content=body(),
                        expect=(201, 202, 204))
    return str(httpx.URL(url).join(response.headers.get("location", url)))


def _request(client: RegistryClient, method: str, url: str, *,
             headers: dict[str, str] | None = None,
             content: bytes | Iterator[bytes] | None = None,
             expect: tuple[int, ...] = ()) -> httpx.Response:
    """One request with the registry's auth (credentials only to the registry's own
    origin, never to an upload location on another host), its small answer read.

    A streamed body cannot be sent twice: a 401 to it raises
    :class:`~airgap.net.transport.Reauthenticated` to restart the upload.
    """
    response = open_stream(client.downloader.client, url, auth=client.auth, method=method,
                           headers=headers, content=content, action="push")
    try:
        response.read()
    finally:
        response.close()
    if expect and response.status_code not in expect:
        raise ServerResponseError(f"{method} {url}: the registry answered "
                                  f"{response.status_code}: {response.text[:200]}")
    return response


def _put_manifest(client: RegistryClient, layout: oci.Layout, manifest: oci.Descriptor,
                  reference: str) -> None:
    data = layout.blob(manifest.digest).read_bytes()
    url = client.url("manifests", reference)
    response = client.downloader.retrying(lambda: _request(client, "PUT", url, headers={
        "Content-Type": manifest.media_type}, content=data, expect=(200, 201)), url)
    announced = response.headers.get("docker-content-digest")
    if announced and announced != manifest.digest:
        raise ServerResponseError(f"PUT {url}: the registry stored {announced}, not "
                                  f"{manifest.digest}")
