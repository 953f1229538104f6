"""The registry image, pulled without a daemon from the real docker-registry."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airgap.errors import AuthenticationError, ChecksumMismatchError, NotFoundError, UsageError
from airgap.fetch.image import ImageResult
from airgap.manifest.plan import ImageItem
from airgap.net.download import Downloader
from airgap.net.transport import NetworkSettings, make_client
from airgap.oci.reference import ImageReference
from airgap.reporter import NullReporter
from tests.conftest import REGISTRY_CREDENTIALS, TEST_REPOSITORY, TEST_TAG, move_staged, pull_image
from tests.peers.files import Fault
from tests.peers.images import TestImage, push_image
from tests.peers.processes import DockerRegistry
from tests.peers.registry_front import RegistryFront

SETTINGS = NetworkSettings(read_timeout=2.0, retries=3, backoff_initial=0.01, backoff_max=0.05)
REFERENCE = ImageReference("docker.elastic.co", TEST_REPOSITORY, TEST_TAG)
BOTH = ("linux/amd64", "linux/arm64")


@pytest.fixture
def downloader() -> Iterator[Downloader]:
    with make_client(SETTINGS) as client:
        yield Downloader(client, SETTINGS, NullReporter())


def pull(url: str, downloader: Downloader, bundle: Path, platforms: tuple[str, ...] = BOTH,
         reference: ImageReference = REFERENCE) -> ImageResult:
    return pull_image(ImageItem(reference, url, platforms, "test"), bundle, downloader)


def blob_names(bundle: Path) -> set[str]:
    return {p.name for p in (bundle / "images" / "blobs" / "sha256").iterdir()}


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, check=True,
                          timeout=300)


def test_multi_platform_image_stores_each_blob_once(pushed_image: TestImage,
                                                    registry: DockerRegistry,
                                                    downloader: Downloader,
                                                    tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    result = pull(registry.url, downloader, bundle)
    # Every blob of the source layout, and nothing else, each stored once.
    source_blobs = {p.name for p in (pushed_image.layout / "blobs" / "sha256").iterdir()}
    assert blob_names(bundle) == source_blobs
    for path in (bundle / "images" / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    (shared,) = pushed_image.shared_layers
    assert sum(1 for layer in result.platforms[0].layers + result.platforms[1].layers
               if layer.digest == shared) == 2
    assert len([f for f in result.files if f.dest.name == shared[7:]]) == 1
    # All platforms were wanted: the registry's index is kept, digest and all.
    assert result.upstream_digest == pushed_image.index_digest
    assert result.stored.digest == pushed_image.index_digest
    index = json.loads((bundle / "images" / "index.json").read_text())
    assert index["manifests"][0]["annotations"] == {
        "org.opencontainers.image.ref.name": TEST_TAG,
        "io.containerd.image.name": f"docker.elastic.co/{TEST_REPOSITORY}:{TEST_TAG}"}
    for arch, platform in (("amd64", "linux/amd64"), ("arm64", "linux/arm64")):
        info = json.loads(skopeo("inspect", "--override-arch", arch,
                                 f"oci:{bundle}/images:{TEST_TAG}").stdout)
        assert info["Architecture"] == arch
        assert info["Digest"] == pushed_image.index_digest  # skopeo names the index
        assert info["Layers"] == [*pushed_image.shared_layers,
                                  pushed_image.platform_layers[platform]]
        skopeo("copy", "--override-arch", arch, f"oci:{bundle}/images:{TEST_TAG}",
               f"dir:{tmp_path / arch}")
        assert (tmp_path / arch / "manifest.json").exists()


def test_one_platform_of_an_index(pushed_image: TestImage, registry: DockerRegistry,
                                  downloader: Downloader, tmp_path: Path) -> None:
    result = pull(registry.url, downloader, tmp_path / "b", ("linux/arm64",))
    (platform,) = result.platforms
    assert platform.manifest.digest == pushed_image.manifests["linux/arm64"]
    assert result.stored.digest != pushed_image.index_digest
    assert pushed_image.platform_layers["linux/amd64"][7:] not in blob_names(tmp_path / "b")
    stored = json.loads((tmp_path / "b" / "images" / "blobs" / "sha256" /
                         result.stored.digest[7:]).read_text())
    assert [m["digest"] for m in stored["manifests"]] == [pushed_image.manifests["linux/arm64"]]


def test_missing_tag_and_platform_are_clear(pushed_image: TestImage, registry: DockerRegistry,
                                            downloader: Downloader, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such image tag"):
        pull(registry.url, downloader, tmp_path / "b",
             reference=ImageReference("docker.elastic.co", TEST_REPOSITORY, "8.0.0"))
    with pytest.raises(NotFoundError, match=r"has no linux/s390x image \(it has: linux/amd64, "
                                            r"linux/arm64"):
        pull(registry.url, downloader, tmp_path / "b", ("linux/s390x",))


def test_single_manifest_image_is_accepted_when_its_platform_matches(
        test_image: TestImage, registry: DockerRegistry, downloader: Downloader,
        tmp_path: Path) -> None:
    subprocess.run(["skopeo", "copy", "--override-arch", "amd64", "--dest-tls-verify=false",
                    f"oci:{test_image.layout}:{TEST_TAG}",
                    f"docker://{registry.host}/single/arch:{TEST_TAG}"],
                   check=True, capture_output=True)
    single = ImageReference("docker.elastic.co", "single/arch", TEST_TAG)
    result = pull(registry.url, downloader, tmp_path / "b", ("linux/amd64",), single)
    assert result.stored.digest == test_image.manifests["linux/amd64"]
    with pytest.raises(UsageError, match="single-platform image for linux/amd64, not for "
                                         "linux/arm64"):
        pull(registry.url, downloader, tmp_path / "c", BOTH, single)


def test_bearer_token_registry_with_refresh(registry_front: RegistryFront,
                                            tmp_path: Path) -> None:
    registry_front.token_lifetime = 1
    registry_front.faults.inject("*/blobs/*", Fault("slow", times=-1, delay=0.05))
    settings = NetworkSettings(jobs=1, read_timeout=5, retries=2, backoff_initial=0.01)
    with make_client(settings) as client:
        pull(registry_front.url, Downloader(client, settings, NullReporter()), tmp_path / "b")
    assert len(registry_front.token_requests) > 1  # renewed as they expired
    assert all(r["scope"] == f"repository:{TEST_REPOSITORY}:pull"
               and r["service"] == "token-service" for r in registry_front.token_requests)
    first = registry_front.faults.log[0]
    assert first.authorization is None  # anonymous first, then the challenge


def test_token_service_gets_credentials_from_docker_config(
        registry_front: RegistryFront, downloader: Downloader, tmp_path: Path,
        docker_config: Callable[..., Path]) -> None:
    registry_front.credentials = REGISTRY_CREDENTIALS
    with pytest.raises(AuthenticationError, match="refused an anonymous request"):
        pull(registry_front.url, downloader, tmp_path / "b")
    docker_config({registry_front.host: REGISTRY_CREDENTIALS})
    result = pull(registry_front.url, downloader, tmp_path / "b")
    assert len(result.platforms) == 2


def test_basic_auth_registry_with_docker_config(auth_pushed_image: TestImage,
                                                auth_registry: DockerRegistry,
                                                downloader: Downloader, tmp_path: Path,
                                                docker_config: Callable[..., Path]) -> None:
    with pytest.raises(AuthenticationError, match="access denied"):
        pull(auth_registry.url, downloader, tmp_path / "b")
    docker_config({f"https://{auth_registry.host}": REGISTRY_CREDENTIALS})
    result = pull(auth_registry.url, downloader, tmp_path / "b")
    assert result.stored.digest == auth_pushed_image.index_digest


def test_blob_cut_midway_resumes_with_range(registry_front: RegistryFront,
                                            pushed_image: TestImage, downloader: Downloader,
                                            tmp_path: Path) -> None:
    shared = pushed_image.shared_layers[0]
    registry_front.faults.inject(f"*/blobs/{shared}", Fault("drop", after=300_000))
    pull(registry_front.url, downloader, tmp_path / "b")
    requests = registry_front.faults.requests(f"*/blobs/{shared}")
    assert [r.fault for r in requests] == ["drop", None]
    assert requests[1].range is not None and requests[1].range.startswith("bytes=")
    data = (tmp_path / "b" / "images" / "blobs" / "sha256" / shared[7:]).read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == shared


def test_registry_ignoring_range_restarts_the_blob(registry_front: RegistryFront,
                                                   pushed_image: TestImage,
                                                   downloader: Downloader,
                                                   tmp_path: Path) -> None:
    shared = pushed_image.shared_layers[0]
    registry_front.faults.inject(f"*/blobs/{shared}", Fault("truncate", after=200_000))
    registry_front.faults.inject(f"*/blobs/{shared}", Fault("ignore_range"))
    pull(registry_front.url, downloader, tmp_path / "b")
    assert [r.fault for r in registry_front.faults.requests(f"*/blobs/{shared}")] == \
        ["truncate", "ignore_range"]
    assert shared[7:] in blob_names(tmp_path / "b")


def test_blob_with_wrong_digest_is_never_named_complete(registry_front: RegistryFront,
                                                        pushed_image: TestImage,
                                                        downloader: Downloader,
                                                        tmp_path: Path) -> None:
    layer = pushed_image.platform_layers["linux/amd64"]
    registry_front.faults.inject(f"*/blobs/{layer}", Fault("corrupt", times=-1))
    with pytest.raises(ChecksumMismatchError, match="digest mismatch"):
        pull(registry_front.url, downloader, tmp_path / "b")
    # What was fetched waits in staging; the bad blob is not there under its name, nor
    # as a partial download; the folder itself got nothing.
    staged = tmp_path / "b" / ".airgap-next" / "images" / "blobs" / "sha256"
    names = {p.name for p in staged.iterdir()}
    assert layer[7:] not in names and not any(n.endswith(".part") for n in names)
    assert not (tmp_path / "b" / "images").exists()


def test_redirected_blobs_get_no_credentials(registry_front: RegistryFront,
                                             downloader: Downloader, tmp_path: Path) -> None:
    registry_front.redirect_blobs = True
    pull(registry_front.url, downloader, tmp_path / "b")
    at_front = [r for r in registry_front.faults.log if "/blobs/" in r.path
                and not r.path.startswith("/storage")]
    at_storage = [r for r in registry_front.faults.log if r.path.startswith("/storage")]
    assert at_front and all(r.authorization.startswith("Bearer ") for r in at_front
                            if r.authorization)
    assert at_storage and all(r.authorization is None for r in at_storage)


def test_a_second_pull_downloads_no_blob_again(registry_front: RegistryFront,
                                               downloader: Downloader, tmp_path: Path) -> None:
    pull(registry_front.url, downloader, tmp_path / "b")
    before = len(registry_front.faults.requests("*/blobs/*"))
    again = pull(registry_front.url, downloader, tmp_path / "b")
    assert len(registry_front.faults.requests("*/blobs/*")) == before
    assert all(f.reused for f in again.files if "blobs" in f.url)


def test_push_helper_round_trip(test_image: TestImage, registry: DockerRegistry) -> None:
    # The peer itself: what we push is what the registry serves.
    destination = push_image(test_image, registry.host, "peer/check")
    raw = skopeo("inspect", "--raw", "--tls-verify=false", destination).stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == test_image.index_digest


def test_two_images_share_their_common_layer_and_a_missing_one_names_images(
        agent_image: TestImage, pushed_image: TestImage, registry: DockerRegistry,
        downloader: Downloader, tmp_path: Path) -> None:
    from airgap.bundle.staging import Staging
    from airgap.fetch.image import fetch_images, resolve_image

    def pull_both(items: list[ImageItem], bundle: Path) -> list[ImageResult]:
        resolved = [resolve_image(item, downloader, registry=number == 0)
                    for number, item in enumerate(items)]
        results = fetch_images(resolved, Staging(bundle), downloader)
        move_staged(bundle)
        return results

    agent = ImageReference("docker.elastic.co", "elastic-agent/elastic-agent", TEST_TAG)
    bundle = tmp_path / "bundle"
    registry_image, agent_result = pull_both(
        [ImageItem(REFERENCE, registry.url, BOTH, "test"),
         ImageItem(agent, registry.url, BOTH, "test")], bundle)
    shared = pushed_image.shared_layers[0]
    assert shared in {layer.digest for p in agent_result.platforms for layer in p.layers}
    assert blob_names(bundle) == {p.name for image in (pushed_image, agent_image)
                                  for p in (image.layout / "blobs" / "sha256").iterdir()}
    assert agent_result.upstream_digest == agent_image.index_digest
    assert registry_image.upstream_digest == pushed_image.index_digest
    missing = ImageReference("docker.elastic.co", "elastic-agent/elastic-agent", "0.0.1")
    with pytest.raises(NotFoundError, match="no such image tag") as refused:
        pull_both([ImageItem(REFERENCE, registry.url, BOTH, "test"),
                   ImageItem(missing, registry.url, BOTH, "test")], tmp_path / "b")
    assert refused.value.details == ("check the image's name and tag in `images`",)
