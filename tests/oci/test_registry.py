"""The registry client treats every answer as hostile: a lying registry is refused."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web

from airgap import oci
from airgap.errors import NetworkError, ServerResponseError
from airgap.net.credentials import Credentials
from airgap.net.download import Downloader
from airgap.net.transport import NetworkSettings, make_client, open_stream
from airgap.oci.registry import RegistryAuth, RegistryClient, parse_challenge
from airgap.reporter import NullReporter
from tests.peers.net import BackgroundServer

SETTINGS = NetworkSettings(read_timeout=2.0, retries=1, backoff_initial=0.01)
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                       "config": {"mediaType": "x", "digest": "sha256:" + "a" * 64, "size": 1},
                       "layers": []}).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


def lying_registry(content_type: str, digest: str | None, body: bytes = MANIFEST
                   ) -> BackgroundServer:
    async def manifest(request: web.Request) -> web.Response:
        headers = {"Content-Type": content_type}
        if digest:
            headers["Docker-Content-Digest"] = digest
        return web.Response(body=body, headers=headers)

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_get("/v2/repo/manifests/{ref}", manifest)
    return BackgroundServer(app)


@pytest.fixture
def downloader() -> Iterator[Downloader]:
    with make_client(SETTINGS) as client:
        yield Downloader(client, SETTINGS, NullReporter())


def client_for(server: BackgroundServer, downloader: Downloader) -> RegistryClient:
    return RegistryClient(downloader, server.url, "repo", None)


def test_an_honest_answer_is_taken(downloader: Downloader) -> None:
    with lying_registry(oci.OCI_MANIFEST, DIGEST) as server:
        data, media_type, digest = client_for(server, downloader).manifest("9.0.0")
    assert (data, media_type, digest) == (MANIFEST, oci.OCI_MANIFEST, DIGEST)


@pytest.mark.parametrize(("content_type", "digest", "reference", "message"), [
    (oci.OCI_MANIFEST, "sha256:" + "b" * 64, "9.0.0", "but the registry announces"),
    (oci.OCI_INDEX, DIGEST, "9.0.0", "the body says .*manifest.* but was served as .*index"),
    ("application/octet-stream", None, "9.0.0", "not an image manifest or index"),
    ("text/html", None, "9.0.0", "answered an HTML page instead of the document"),
    (oci.OCI_MANIFEST, None, "sha256:" + "c" * 64, "asked for sha256:c"),
])
def test_lies_about_digest_or_media_type_are_refused(downloader: Downloader, content_type: str,
                                                     digest: str | None, reference: str,
                                                     message: str) -> None:
    with lying_registry(content_type, digest) as server, \
            pytest.raises(ServerResponseError, match=message):
        client_for(server, downloader).manifest(reference)


def test_descriptors_naming_files_outside_blobs_are_refused() -> None:
    with pytest.raises(ServerResponseError, match="is not a sha256 digest"):
        oci.parse_descriptor({"mediaType": "x", "digest": "sha256:../../etc/passwd",
                              "size": 1}, "test")
    with pytest.raises(ServerResponseError, match="is not a byte count"):
        oci.parse_descriptor({"mediaType": "x", "digest": DIGEST, "size": -5}, "test")


def test_challenge_parsing() -> None:
    challenge = parse_challenge('Bearer realm="https://docker-auth.elastic.co/auth",'
                                'service="token-service",scope="repository:a/b:pull"')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://docker-auth.elastic.co/auth",
                                "service": "token-service", "scope": "repository:a/b:pull"}


def test_platform_matching() -> None:
    arm = oci.Platform.parse("linux/arm64")
    assert arm.matches(oci.Platform("linux", "arm64", "v8"))
    assert arm.matches(oci.Platform("linux", "arm64"))
    assert not arm.matches(oci.Platform("linux", "arm", "v7"))
    assert oci.Platform.parse("linux/amd64").matches(oci.Platform("linux", "amd64"))


# -- credentials and redirects -----------------------------------------------------------

SECRET = Credentials("fleet-operator", "correct horse battery staple", "test")
Seen = list[tuple[str, dict[str, str]]]


def recording_server(seen: Seen, redirect_to: str | None = None) -> BackgroundServer:
    """Logs every request's path and headers; answers a token, or ``302`` to
    ``redirect_to`` (keeping path and query) when given."""

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append((request.path, dict(request.headers)))
        if redirect_to is not None:
            raise web.HTTPFound(f"{redirect_to}{request.path_qs}")
        return web.json_response({"token": "t0ken", "expires_in": 300})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return BackgroundServer(app)


def bearer_registry(realm: str) -> BackgroundServer:
    """A registry whose ``/v2/`` asks for a Bearer token from ``realm``."""

    async def ping(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") == "Bearer t0ken":
            return web.json_response({})
        return web.json_response({}, status=401, headers={
            "WWW-Authenticate": f'Bearer realm="{realm}",service="svc"'})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    return BackgroundServer(app)


def test_redirect_to_another_port_drops_credential_headers(downloader: Downloader) -> None:
    seen: Seen = []
    with recording_server(seen) as other, recording_server(seen, other.url) as first:
        response = open_stream(downloader.client, f"{first.url}/auth?x=1", headers={
            "Authorization": SECRET.basic(), "Cookie": "session=1", "X-Kept": "yes"})
        response.close()
    (first_path, first_headers), (other_path, other_headers) = seen
    assert first_headers["Authorization"] == SECRET.basic()
    assert first_headers["Cookie"] == "session=1"
    assert other_path == first_path == "/auth"
    assert "Authorization" not in other_headers and "Cookie" not in other_headers
    assert other_headers["X-Kept"] == "yes"


def test_token_realm_redirecting_elsewhere_never_gets_the_basic_credentials(
        downloader: Downloader) -> None:
    seen: Seen = []
    with recording_server(seen) as elsewhere, \
            recording_server(seen, elsewhere.url) as realm, \
            bearer_registry(f"{realm.url}/auth") as server:
        RegistryClient(downloader, server.url, "repo", SECRET).ping()
        (_, at_realm), (_, at_elsewhere) = seen
        assert at_realm["Authorization"] == SECRET.basic()
        assert "Authorization" not in at_elsewhere, "the credentials followed the redirect"


def test_plain_http_realm_of_an_https_registry_is_refused(downloader: Downloader) -> None:
    seen: Seen = []
    with recording_server(seen) as realm:
        auth = RegistryAuth(downloader, "https://registry.test", "repository:repo:pull", SECRET)
        challenge = httpx.Response(401, headers={
            "WWW-Authenticate": f'Bearer realm="{realm.url}/auth",service="svc"'},
            request=httpx.Request("GET", "https://registry.test/v2/"))
        with pytest.raises(ServerResponseError, match="in clear text"):
            auth.handle_challenge(challenge)
    assert seen == [], "the credentials went to a plain-HTTP token realm"


def flaky_registry(failures: int) -> tuple[BackgroundServer, list[str]]:
    """A registry whose ``/v2/`` answers 503 ``failures`` times, then 200."""
    seen: list[str] = []

    async def ping(request: web.Request) -> web.Response:
        seen.append(request.path)
        if len(seen) <= failures:
            return web.Response(status=503, headers={"Retry-After": "0"})
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    return BackgroundServer(app), seen


def test_the_ping_is_retried_like_any_request(downloader: Downloader) -> None:
    server, seen = flaky_registry(failures=1)
    with server:
        client_for(server, downloader).ping()
    assert seen == ["/v2/", "/v2/"]


def test_a_registry_that_keeps_failing_is_named(downloader: Downloader) -> None:
    server, seen = flaky_registry(failures=99)
    with server, pytest.raises(NetworkError, match=f"cannot reach the registry at "
                                                   f"{server.url}: .*gave up after 1"):
        client_for(server, downloader).ping()
    assert len(seen) == 2


@pytest.mark.parametrize("realm", ["http://[::1/token", "http://127.0.0.1:abc/token"])
def test_a_token_realm_that_is_not_a_url_is_refused(downloader: Downloader,
                                                    realm: str) -> None:
    with bearer_registry(realm) as server, \
            pytest.raises(ServerResponseError, match="the token realm .* is not a URL"):
        client_for(server, downloader).ping()


def test_a_redirect_to_something_that_is_not_a_url_is_refused(downloader: Downloader) -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://[::1/elsewhere"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    with BackgroundServer(app) as server, \
            pytest.raises(ServerResponseError, match="is not a valid URL"):
        open_stream(downloader.client, f"{server.url}/file")


def test_a_url_built_from_a_hostile_answer_is_refused(downloader: Downloader) -> None:
    # A version or digest from a server, once in a URL, must not crash the request.
    with pytest.raises(ServerResponseError, match="is not a valid URL"):
        open_stream(downloader.client, "http://127.0.0.1:9/epr/nginx/nginx-2.0.0\n.zip")
