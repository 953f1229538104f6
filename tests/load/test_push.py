"""Pushing to a registry whose tokens die mid-push, or that refuses the push outright,
and credentials kept to the registry's own origin."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from airgap.bundle.layout import IMAGES
from airgap.errors import AuthenticationError, ManyErrors
from airgap.load.push import PushResult, PushTarget, connect_registry, push_image
from airgap.net.download import Downloader
from airgap.net.transport import NetworkSettings, make_client
from tests.conftest import REGISTRY_CREDENTIALS, TEST_REPOSITORY
from tests.peers.files import Fault
from tests.peers.images import TestImage
from tests.peers.net import BackgroundServer
from tests.peers.processes import DockerRegistry
from tests.peers.registry_front import RegistryFront
from tests.reporting import RecordingReporter
from tests.terminal import at_terminal, in_pipe

# One job: the token-use counts below then line up with the requests of one blob at a time.
SETTINGS = NetworkSettings(jobs=1, read_timeout=10.0, retries=3, backoff_initial=0.01,
                           backoff_max=0.05)
BLOB_UPLOAD = "/v2/*/blobs/uploads/*"


@pytest.fixture
def bundle(test_image: TestImage, tmp_path: Path) -> Path:
    """A bundle holding only the test image, as ``airgap load`` reads it."""
    root = tmp_path / "bundle"
    root.mkdir()
    (root / IMAGES).symlink_to(test_image.layout, target_is_directory=True)
    return root


@pytest.fixture
def downloader(docker_config: Callable[..., Path]) -> Iterator[Downloader]:
    """A downloader with no registry credentials around (an empty DOCKER_CONFIG)."""
    with make_client(SETTINGS) as client:
        yield Downloader(client, SETTINGS, RecordingReporter())


@pytest.fixture
def front_for(registry: DockerRegistry) -> Iterator[Callable[..., RegistryFront]]:
    """Start a :class:`RegistryFront` over the real registry with the given options."""
    started: list[RegistryFront] = []

    def start(**options: object) -> RegistryFront:
        front = RegistryFront(registry, **options).start()  # type: ignore[arg-type]
        started.append(front)
        return front

    yield start
    for front in started:
        front.stop()


def push_through(front: RegistryFront, bundle: Path, downloader: Downloader
                 ) -> tuple[PushResult, str]:
    namespace = f"mirror-{secrets.token_hex(4)}"  # nothing there yet: every blob goes up
    target = PushTarget.parse(f"{front.host}/{namespace}")
    client = connect_registry(target, TEST_REPOSITORY, downloader, insecure=True)
    return push_image(bundle, client, "9.0.0"), target.repository(TEST_REPOSITORY)


def test_token_revoked_mid_upload_is_renewed_and_the_blob_sent_again(
        front_for: Callable[..., RegistryFront], registry: DockerRegistry, bundle: Path,
        downloader: Downloader, test_image: TestImage) -> None:
    # Each token dies after two requests: HEAD and POST of a blob use it up, so the
    # blob's streamed PUT meets a 401 and must restart with a fresh token.
    front = front_for(token_uses=2)
    result, repository = push_through(front, bundle, downloader)
    assert result.digest == test_image.index_digest and result.uploaded > 2
    refused = [r for r in front.faults.requests(BLOB_UPLOAD) if r.method == "PUT"]
    assert len(refused) >= 2, "no streamed upload met an expired token"
    index = httpx.get(f"{registry.url}/v2/{repository}/manifests/9.0.0",
                      headers={"Accept": "application/vnd.oci.image.index.v1+json"})
    assert index.headers["docker-content-digest"] == test_image.index_digest
    for layer in test_image.shared_layers + tuple(test_image.platform_layers.values()):
        assert httpx.head(f"{registry.url}/v2/{repository}/blobs/{layer}").status_code == 200


def test_fresh_tokens_refused_mid_upload_is_an_authentication_error(
        front_for: Callable[..., RegistryFront], bundle: Path, downloader: Downloader) -> None:
    front = front_for(token_uses=1)  # no token lives to see the PUT after its POST
    with pytest.raises(ManyErrors) as caught:  # every blob fails the same way
        push_through(front, bundle, downloader)
    assert caught.value.errors
    for error in caught.value.errors:
        assert isinstance(error, AuthenticationError)
        assert "refused fresh credentials too (401)" in error.message
    puts = [r for r in front.faults.requests(BLOB_UPLOAD) if r.method == "PUT"]
    assert len(puts) == 2 * len(caught.value.errors), "one restart per blob, not more"


def test_pull_only_tokens_are_an_authentication_error(
        front_for: Callable[..., RegistryFront], bundle: Path, downloader: Downloader) -> None:
    front = front_for(grant_push=False)  # as docker.elastic.co grants anonymous clients
    # Found when the registry is first asked, before a single blob goes up.
    with pytest.raises(AuthenticationError, match=r"refused the push \(401\)"):
        push_through(front, bundle, downloader)
    assert [r for r in front.faults.requests(BLOB_UPLOAD) if r.method in ("PUT", "PATCH")] == []


def test_upload_location_on_another_host_gets_no_credentials(
        bundle: Path, downloader: Downloader, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRGAP_REGISTRY_USERNAME", "fleet-operator")
    monkeypatch.setenv("AIRGAP_REGISTRY_PASSWORD", "correct horse battery staple")
    seen: list[tuple[str, str, str | None]] = []

    async def storage(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.headers.get("Authorization")))
        async for _ in request.content.iter_chunked(1 << 16):
            pass  # take the blob, whatever its size
        return web.Response(status=201)

    storage_app = web.Application(client_max_size=1 << 30)
    storage_app.router.add_route("*", "/{tail:.*}", storage)

    with BackgroundServer(storage_app) as elsewhere:
        async def registry(request: web.Request) -> web.StreamResponse:
            if not request.headers.get("Authorization", "").startswith("Basic "):
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="r"'})
            if request.method == "HEAD":
                return web.Response(status=404)
            if request.method == "POST":
                return web.Response(status=202, headers={
                    "Location": f"{elsewhere.url}/upload/{secrets.token_hex(4)}"})
            await request.read()
            return web.Response(status=201)

        registry_app = web.Application()
        registry_app.router.add_route("*", "/v2/{tail:.*}", registry)
        with BackgroundServer(registry_app) as server:
            host = server.url.removeprefix("http://")
            monkeypatch.setenv("AIRGAP_REGISTRY", host)
            client = connect_registry(PushTarget.parse(host), TEST_REPOSITORY, downloader,
                                      insecure=True)
            push_image(bundle, client, "9.0.0")
    # The check before verifying starts an upload and cancels it there; blobs go by PUT.
    assert seen and all(method in ("PUT", "DELETE") for method, _, _ in seen)
    assert [auth for _, _, auth in seen if auth is not None] == [], \
        "the registry's credentials went to the upload location on another host"



@pytest.fixture
def locked_front(pushed_image: TestImage, registry: DockerRegistry) -> Iterator[RegistryFront]:
    """docker.elastic.co's behaviour, its token service giving tokens only for the right
    credentials (a wrong password: 401), in front of the real registry."""
    front = RegistryFront(registry, credentials=REGISTRY_CREDENTIALS).start()
    yield front
    front.stop()


def wrong_credentials(front: RegistryFront, tmp_path: Path) -> dict[str, str]:
    return {"AIRGAP_REGISTRY": front.host,
            "AIRGAP_REGISTRY_USERNAME": REGISTRY_CREDENTIALS.username,
            "AIRGAP_REGISTRY_PASSWORD": "not the password", "DOCKER_CONFIG": str(tmp_path)}


def test_a_401_for_wrong_credentials_is_asked_once_and_names_the_registry(
        golden_bundle: Path, locked_front: RegistryFront, tmp_path: Path) -> None:
    started = time.monotonic()
    result = in_pipe("load", str(golden_bundle), "--registry", f"{locked_front.host}/epr",
                     "--insecure", env=wrong_credentials(locked_front, tmp_path))
    assert result.returncode == 1, result.stderr
    assert len(locked_front.token_requests) == 1, "a refused password was sent again"
    assert [r.method for r in locked_front.faults.requests()] == ["GET"]  # /v2/, once
    assert time.monotonic() - started < 15
    assert f"the registry {locked_front.host} refused the credentials" in result.stderr
    assert f"docker login {locked_front.host}`" in result.stderr
    assert "not the password" not in result.stderr and "hashing" not in result.stderr
    assert "retry" not in result.stderr


def test_a_403_on_the_upload_is_asked_once_and_names_the_registry(
        golden_bundle: Path, registry_front: RegistryFront, tmp_path: Path) -> None:
    registry_front.faults.inject(BLOB_UPLOAD, Fault("status", times=-1, status=403))
    started = time.monotonic()
    result = in_pipe("load", str(golden_bundle), "--registry", f"{registry_front.host}/epr",
                     "--insecure", env={"DOCKER_CONFIG": str(tmp_path)})
    assert result.returncode == 1, result.stderr
    assert len(registry_front.faults.requests(BLOB_UPLOAD, "POST")) == 1, \
        "a refused push was tried again"
    assert time.monotonic() - started < 15
    assert f"http://{registry_front.host}/v2/epr/" in result.stderr
    assert "refused the push (403)" in result.stderr
    assert f"docker login {registry_front.host}`" in result.stderr
    assert "hashing" not in result.stderr and "retry" not in result.stderr


def test_at_a_terminal_refused_credentials_say_where_to_log_in(
        golden_bundle: Path, locked_front: RegistryFront, tmp_path: Path) -> None:
    seen = at_terminal("load", str(golden_bundle), "--registry", f"{locked_front.host}/epr",
                       "--insecure", env=wrong_credentials(locked_front, tmp_path))
    seen.assert_no_traceback()
    assert seen.code == 1, seen.text
    assert len(locked_front.token_requests) == 1
    assert f"the registry {locked_front.host} refused the credentials" in seen.text, seen.text
    assert f"docker login {locked_front.host}`" in seen.text
    assert "not the password" not in seen.raw
