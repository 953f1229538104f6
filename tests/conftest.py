"""Shared fixtures: the loopback peers every test module can use.

Session-scoped peers start once: the real docker-registry and dockerd (Debian packages),
and our stand-ins for artifacts.elastic.co and the package registry API. Function-scoped
wrappers hand out the same peers with their fault rules and request logs cleared.

A peer whose program is missing skips its tests with the reason, except under
``CI=true``, where a missing peer is a failure: CI must exercise everything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from airgap.bundle.staging import Staging
from airgap.fetch.image import ImageResult, fetch_image, resolve_image
from airgap.manifest import load_manifest, make_plan
from airgap.manifest.plan import ImageItem
from airgap.net.download import Downloader
from airgap.net.transport import NetworkSettings, make_client
from airgap.reporter import NullReporter
from airgap.trust.gpg import Verifier
from tests.peers.artifacts import ArtifactServer
from tests.peers.defend import DefendServer
from tests.peers.epr import EprServer
from tests.peers.gpgkeys import SigningKey
from tests.peers.images import TestImage, build_agent_image, build_test_image, push_image
from tests.peers.processes import Containerd, Credentials, Dockerd, DockerRegistry
from tests.peers.registry_front import RegistryFront

#: The fixtures of merge, split and join (a bundle and its delta, volumes), shared.
pytest_plugins = ("tests.carrying",)

IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_REPOSITORY = "package-registry/distribution"
TEST_TAG = "9.0.0"


def require_programs(*programs: str) -> None:
    """Skip (or, in CI, fail) when one of ``programs`` is not installed."""
    missing = [p for p in programs if shutil.which(p) is None]
    if not missing:
        return
    reason = (f"needs {', '.join(missing)} (Debian packages docker-registry, docker.io, "
              "skopeo, busybox-static, strace, btrfs-progs; `make setup` installs them)")
    if IN_CI:
        pytest.fail(f"CI=true and a peer is missing: {reason}")
    pytest.skip(reason)


def require_root(what: str) -> None:
    """dockerd runs as root here; skip (or fail in CI) otherwise."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(f"CI=true but not root: {what} needs root")
        pytest.skip(f"{what} needs root")


# -- signing keys ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def signer() -> Iterator[SigningKey]:
    """The throwaway key that signs everything the stand-ins serve."""
    key = SigningKey()
    yield key
    key.close()


@pytest.fixture(scope="session")
def signer_public_key(signer: SigningKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The signer's public key as a file, for ``trust.keys``."""
    return signer.export_public(tmp_path_factory.mktemp("keys") / "test-signer.asc")


@pytest.fixture
def verifier(signer_public_key: Path) -> Iterator[Verifier]:
    """An isolated GnuPG home trusting the pinned Elastic key and the signer's."""
    with Verifier([signer_public_key]) as verifier:
        yield verifier


#: Network settings that give up fast: for tests whose faults are meant to be survived
#: by a few quick retries.
QUICK_NETWORK = NetworkSettings(read_timeout=1.0, retries=3, backoff_initial=0.01,
                                backoff_max=0.05)


@pytest.fixture
def downloader() -> Iterator[Downloader]:
    """The download engine with :data:`QUICK_NETWORK`; modules needing other settings
    define their own ``downloader``."""
    with make_client(QUICK_NETWORK) as client:
        yield Downloader(client, QUICK_NETWORK, NullReporter())


REPO = Path(__file__).resolve().parent.parent
#: Real files of Elastic's, copied for the tests (see its README.md).
FIXTURES = REPO / "tests" / "fixtures"


def snapshot(root: Path) -> dict[str, str]:
    """Every file below ``root`` and the SHA-256 of its bytes."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def start_airgap(*args: str, **popen: Any) -> subprocess.Popen[str]:
    """``python -m airgap ARGS`` from this checkout in a process of its own, for tests
    that signal or kill it; ``popen`` goes to :class:`subprocess.Popen` (its ``env`` is
    added to this process's environment)."""
    env = {**os.environ, **popen.pop("env", {}), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "airgap", *args], cwd=REPO, text=True,
                            env=env, **popen)


# -- manifests -------------------------------------------------------------------------------

ManifestMaker = Callable[..., Path]


@pytest.fixture
def make_manifest(tmp_path: Path, signer_public_key: Path) -> ManifestMaker:
    """Write a manifest whose sources are the given peers and which trusts the signer.

    ``make_manifest(artifacts_from=server, epr_from=server, registry_from=registry,
    platforms={...}, integrations=[...], ...)``: the peers fill ``sources``; every other
    keyword is a top-level manifest key.
    """

    def make(*, artifacts_from: ArtifactServer | None = None,
             epr_from: EprServer | None = None, registry_from: DockerRegistry | None = None,
             name: str = "airgap.yaml", **keys: Any) -> Path:
        sources: dict[str, str] = dict(keys.pop("sources", {}))
        if artifacts_from is not None:
            sources["artifacts"] = artifacts_from.url
        if epr_from is not None:
            sources["epr"] = epr_from.url
        if registry_from is not None:
            sources["registry"] = registry_from.url
        trust = keys.pop("trust", {"keys": [str(signer_public_key)]})
        document = {"apiVersion": "airgap/v1", "kind": "Bundle",
                    "stack": {"version": keys.pop("version", "9.0.0")}, **keys,
                    "sources": sources, "trust": trust}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    return make


# -- stand-ins -------------------------------------------------------------------------------


def site_manifest(make_manifest: ManifestMaker, front: RegistryFront,
                  artifacts: ArtifactServer, epr: EprServer, *, size: int = 30_000,
                  defend: DefendServer | None = None, **keys: object) -> Path:
    """A manifest reading from the given stand-ins, with every artifact it plans
    published there (``size`` bytes each); Elastic Defend's from ``defend`` when given."""
    keys.setdefault("platforms", {"arch": ["x86_64", "arm64"]})
    keys.setdefault("integrations", ["system", "nginx", "fleet_server"])
    # Elastic Defend's artifacts have tests of their own (with the endpoint integration,
    # a fetch would otherwise ask artifacts.security.elastic.co for them).
    keys.setdefault("security", {"endpoint_artifacts": False})
    sources = {"registry": front.url}
    if defend is not None:
        sources["security"] = defend.url
    path = make_manifest(artifacts_from=artifacts, epr_from=epr, **keys, sources=sources)
    for item in make_plan(load_manifest(path)).artifacts:
        if not (artifacts.root / item.path).exists():
            artifacts.publish(item.path, size)
    return path





@pytest.fixture
def artifact_server(signer: SigningKey, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[ArtifactServer]:
    """A fresh artifacts.elastic.co stand-in (empty tree, no faults) for one test."""
    server = ArtifactServer(tmp_path_factory.mktemp("artifacts"), signer).start()
    yield server
    server.stop()


EPR_CATALOGUE = {"system": ("1.60.0", "2.1.0", "2.2.0-beta1"), "nginx": ("1.20.0", "2.0.0"),
                 "fleet_server": ("1.6.0",), "endpoint": ("9.0.0",)}


@pytest.fixture
def epr_server(signer: SigningKey, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[EprServer]:
    """A fresh package registry stand-in holding ``EPR_CATALOGUE`` plus an nginx only for
    Kibana 9.1 and a package only for 7.17."""
    server = EprServer(tmp_path_factory.mktemp("epr"), signer).start()
    for name, versions in EPR_CATALOGUE.items():
        for version in versions:
            server.add(name, version)
    server.add("nginx", "3.0.0", kibana="^9.1.0")
    server.add("legacy_only", "1.0.0", kibana="^7.17.0")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def attacker() -> Iterator[SigningKey]:
    """A key nobody trusts, to sign what must be refused."""
    key = SigningKey("mallory", "mallory@example.test")
    yield key
    key.close()


# -- real daemons ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    """A real docker-registry on 127.0.0.1, no auth."""
    require_programs("docker-registry")
    server = DockerRegistry(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


REGISTRY_CREDENTIALS = Credentials("fleet-operator", "correct horse battery staple")


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    """A real docker-registry behind htpasswd Basic auth (``REGISTRY_CREDENTIALS``)."""
    require_programs("docker-registry")
    server = DockerRegistry(tmp_path_factory.mktemp("auth-registry"),
                            credentials=REGISTRY_CREDENTIALS).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """A real Docker engine of our own (vfs, no bridge), on its own socket."""
    require_programs("dockerd", "docker")
    require_root("dockerd")
    engine = Dockerd().start()
    yield engine
    engine.stop()


@pytest.fixture
def engine(dockerd: Dockerd, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dockerd]:
    """Our dockerd as DOCKER_HOST, emptied of images and containers after each test."""
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    yield dockerd
    env = dockerd.env()
    for kind in ("container", "image"):
        ids = subprocess.run(["docker", kind, "ls", "-aq"], env=env, capture_output=True,
                             text=True).stdout.split()
        if ids:
            subprocess.run(["docker", kind, "rm", "-f", *ids], env=env, capture_output=True)


def docker(engine: Dockerd, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], env=engine.env(), capture_output=True, text=True)


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    """A real containerd of our own, on its own socket, driven with ctr."""
    require_programs("containerd", "ctr")
    require_root("containerd")
    daemon = Containerd().start()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def test_image(tmp_path_factory: pytest.TempPathFactory) -> TestImage:
    """The multi-platform test image as an OCI layout (not pushed anywhere)."""
    require_programs("skopeo")
    if not Path("/bin/busybox").exists():
        require_programs("busybox")
    return build_test_image(tmp_path_factory.mktemp("test-image") / "layout", tag=TEST_TAG)


@pytest.fixture(scope="session")
def pushed_image(test_image: TestImage, registry: DockerRegistry) -> TestImage:
    """The test image pushed to ``registry`` as package-registry/distribution:9.0.0."""
    require_programs("skopeo")
    push_image(test_image, registry.host, TEST_REPOSITORY)
    return test_image


@pytest.fixture
def registry_front(pushed_image: TestImage, registry: DockerRegistry
                   ) -> Iterator[RegistryFront]:
    """docker.elastic.co's behaviour (anonymous Bearer tokens, redirects, faults) in front
    of the real registry holding the test image."""
    front = RegistryFront(registry).start()
    yield front
    front.stop()


@pytest.fixture(scope="session")
def auth_pushed_image(test_image: TestImage, auth_registry: DockerRegistry) -> TestImage:
    """The test image in the htpasswd-protected registry."""
    push_image(test_image, auth_registry.host, TEST_REPOSITORY,
               credentials=REGISTRY_CREDENTIALS)
    return test_image


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Point DOCKER_CONFIG at a fresh folder; call with ``{host: Credentials}`` to write
    a config.json with base64 ``auth`` entries, as ``docker login`` does."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    monkeypatch.delenv("AIRGAP_REGISTRY", raising=False)
    monkeypatch.delenv("AIRGAP_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("AIRGAP_REGISTRY_PASSWORD", raising=False)

    def write(auths: dict[str, Credentials]) -> Path:
        entries = {host: {"auth": base64.b64encode(f"{c.username}:{c.password}".encode())
                          .decode()} for host, c in auths.items()}
        path = folder / "config.json"
        path.write_text(json.dumps({"auths": entries}))
        return path

    return write


# -- a fetched bundle ------------------------------------------------------------------------


def pull_image(item: ImageItem, folder: Path, downloader: Downloader) -> ImageResult:
    """The image phase of a fetch on its own: ``item`` resolved and fetched into
    ``folder``'s staging folder, then moved into ``folder`` (as a commit would)."""
    staging = Staging(folder)
    result = fetch_image(resolve_image(item, downloader), staging, downloader)
    move_staged(folder)
    return result


def move_staged(folder: Path) -> None:
    """What a phase staged in ``folder``'s staging folder, moved into ``folder`` (the
    commit of a fetch without its index): for tests of one phase."""
    staging = Staging(folder)
    for relative in staging.files():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.path(relative).replace(target)
    shutil.rmtree(staging.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def image_bundle(pushed_image: TestImage, registry: DockerRegistry,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only images/: the test image pulled for both platforms. Read it,
    or copy it before changing anything."""
    from airgap.manifest.plan import ImageItem
    from airgap.oci.reference import ImageReference

    bundle = tmp_path_factory.mktemp("bundle")
    settings = NetworkSettings()
    with make_client(settings) as client:
        pull_image(ImageItem(ImageReference("docker.elastic.co", TEST_REPOSITORY, TEST_TAG),
                             registry.url, ("linux/amd64", "linux/arm64"), "test"),
                   bundle, Downloader(client, settings, NullReporter()))
    return bundle



@pytest.fixture(scope="session")
def operator() -> Iterator[SigningKey]:
    """The site operator's key, which signs the golden bundle's SHA512SUMS."""
    key = SigningKey("site operator", "ops@example.test")
    yield key
    key.close()


@pytest.fixture
def operator_key(operator: SigningKey, tmp_path: Path) -> Path:
    """The operator's public key as a file, for --trust-key."""
    return operator.export_public(tmp_path / "operator.asc")


@pytest.fixture(scope="session")
def golden_bundle(tmp_path_factory: pytest.TempPathFactory, signer: SigningKey,
                  signer_public_key: Path, pushed_image: TestImage, registry: DockerRegistry,
                  operator: SigningKey) -> Iterator[Path]:
    """One bundle (image for both arches, agent and beats, nginx), fetched and signed by the
    operator once per session. Read it, or copy it before changing anything."""
    from airgap.fetch.run import FetchSettings, fetch
    from airgap.reporter import NullReporter

    work = tmp_path_factory.mktemp("golden")
    artifacts = ArtifactServer(work / "artifacts", signer).start()
    epr = EprServer(work / "epr", signer).start()
    try:
        epr.add("nginx", "2.0.0")
        manifest = work / "airgap.yaml"
        manifest.write_text(yaml.safe_dump({
            "apiVersion": "airgap/v1", "kind": "Bundle", "stack": {"version": "9.0.0"},
            "platforms": {"arch": ["x86_64", "arm64"]}, "integrations": ["nginx"],
            "sources": {"registry": registry.url, "artifacts": artifacts.url,
                        "epr": epr.url},
            "trust": {"keys": [str(signer_public_key)]}}))
        for item in make_plan(load_manifest(manifest)).artifacts:
            artifacts.publish(item.path, 50_000)
        bundle = work / "bundle"
        fetch(FetchSettings(manifest, bundle, sign_with=operator.fingerprint,
                            gnupg_home=operator.home), NullReporter())
        yield bundle
    finally:
        artifacts.stop()
        epr.stop()


# -- tailored registries ----------------------------------------------------------------------

SERVER_REPOSITORY = "package-registry/package-registry"
DOCKER_SERVER_REPOSITORY = "airgap-test/package-registry-docker-v2"
#: The packages the tailored bundles hold: Fleet's own three, and nginx as an integration.
TAILORED_PACKAGES = {"elastic_agent": "2.3.0", "fleet_server": "1.6.0", "system": "2.1.0",
                     "nginx": "2.0.0"}


@pytest.fixture(scope="session")
def server_images(tmp_path_factory: pytest.TempPathFactory, registry: DockerRegistry
                  ) -> dict[str, TestImage]:
    """The package registry server stand-in (no packages; checks and reads every zip and
    .sig at start-up), amd64 and arm64, in the loopback registry: ``oci`` as Elastic's
    ``package-registry/package-registry:v<pinned>``, ``docker`` with Docker v2 media
    types as ``DOCKER_SERVER_REPOSITORY`` at the same tag."""
    from airgap import package_registry

    require_programs("skopeo")
    tag = f"v{package_registry.PACKAGE_REGISTRY_VERSION}"
    root = tmp_path_factory.mktemp("server-images")
    images = {"oci": build_test_image(root / "oci", tag=tag, shared_layers=(), server=True),
              "docker": build_test_image(root / "docker", tag=tag, shared_layers=(),
                                         server=True, docker_v2=True)}
    push_image(images["oci"], registry.host, SERVER_REPOSITORY)
    push_image(images["docker"], registry.host, DOCKER_SERVER_REPOSITORY)
    return images


def tailored_manifest(path: Path, registry: DockerRegistry, epr: EprServer, trusted: Path,
                      family: str, *, arch: tuple[str, ...] = ("x86_64", "arm64"),
                      **registry_keys: Any) -> Path:
    """A manifest for a tailored registry on the server stand-in of ``family`` (both
    architectures unless ``arch`` says), nginx as the only integration, no binaries."""
    from airgap import package_registry


    keys: dict[str, Any] = {"flavor": "tailored", **registry_keys}
    if family == "docker":
        keys.setdefault("base", f"docker.elastic.co/{DOCKER_SERVER_REPOSITORY}:"
                                f"v{package_registry.PACKAGE_REGISTRY_VERSION}")
    path.write_text(yaml.safe_dump({
        "apiVersion": "airgap/v1", "kind": "Bundle", "stack": {"version": "9.0.0"},
        "platforms": {"arch": list(arch)}, "registry": keys,
        "integrations": ["nginx"], "artifacts": {"products": []},
        "sources": {"registry": registry.url, "epr": epr.url},
        "trust": {"keys": [str(trusted)]}}, sort_keys=False))
    return path


def grown_tailored_site(work: Path, registry: DockerRegistry, epr: EprServer, trusted: Path,
                        operator: SigningKey, *, extra_size: int = 48 << 20) -> tuple[Path, Path]:
    """A complete tailored bundle (OCI base, signed by the operator) in ``work/bundle``,
    and a manifest that wants one more package, ``kafka``, of ``extra_size`` bytes: a
    fetch of it composes for long enough to be interrupted while it does."""
    from airgap.fetch.run import FetchSettings, fetch

    work.mkdir(parents=True, exist_ok=True)
    if not any(p.name == "elastic_agent" for p in epr.packages):
        epr.add("elastic_agent", "2.3.0")
    epr.add("kafka", "1.0.0", payload=extra_size)
    first = tailored_manifest(work / "site.yaml", registry, epr, trusted, "oci")
    bundle = work / "bundle"
    fetch(FetchSettings(first, bundle, sign_with=operator.fingerprint,
                        gnupg_home=operator.home), NullReporter())
    more = tailored_manifest(work / "more.yaml", registry, epr, trusted, "oci",
                             packages=["kafka"])
    return bundle, more


def publish_tailored_packages(epr: EprServer) -> None:
    """``TAILORED_PACKAGES`` on ``epr``, each beside an older version."""
    for name, version in TAILORED_PACKAGES.items():
        epr.add(name, "1.0.0" if version != "1.0.0" else "0.9.0")
        epr.add(name, version)


@pytest.fixture(scope="session", params=["oci", "docker"])
def tailored_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                    signer: SigningKey, signer_public_key: Path, registry: DockerRegistry,
                    server_images: dict[str, TestImage], operator: SigningKey
                    ) -> Iterator[Path]:
    """A bundle of a tailored registry, fetched and signed by the operator once per
    session for each base family (``oci``, ``docker``): the server stand-in plus the four
    ``TAILORED_PACKAGES``. Read it, or copy it before changing anything."""
    from airgap.fetch.run import FetchSettings, fetch
    from airgap.reporter import NullReporter

    work = tmp_path_factory.mktemp(f"tailored-{request.param}")
    epr = EprServer(work / "epr", signer).start()
    try:
        publish_tailored_packages(epr)
        manifest = tailored_manifest(work / "airgap.yaml", registry, epr, signer_public_key,
                                     request.param)
        bundle = work / "bundle"
        fetch(FetchSettings(manifest, bundle, sign_with=operator.fingerprint,
                            gnupg_home=operator.home), NullReporter())
        yield bundle
    finally:
        epr.stop()


# -- Elastic Defend, more images, a bundle with everything ------------------------------------

AGENT_REPOSITORY = "elastic-agent/elastic-agent"
#: What the Defend stand-in publishes for Endpoint 9.0.0 in ``rich_bundle``.
DEFEND_ARTIFACTS = {"production-rules-linux-v1": b"rule linux\n" * 3000,
                    "production-rules-windows-v1": b"rule windows\n" * 3000,
                    "diagnostic-configuration-v1": b'{"diagnostics": true}\n'}


@pytest.fixture
def defend_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DefendServer]:
    """A fresh artifacts.security.elastic.co stand-in (nothing published) for one test."""
    server = DefendServer(tmp_path_factory.mktemp("defend")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def agent_image(pushed_image: TestImage, registry: DockerRegistry,
                tmp_path_factory: pytest.TempPathFactory) -> TestImage:
    """A second image sharing the test image's large layer, pushed to ``registry`` as
    elastic-agent/elastic-agent:9.0.0 (what the known name ``elastic-agent`` means)."""
    image = build_agent_image(tmp_path_factory.mktemp("agent-image") / "layout", pushed_image,
                              tag=TEST_TAG)
    push_image(image, registry.host, AGENT_REPOSITORY)
    return image


def make_wheelhouse(folder: Path, version: str = "0.1.0") -> Path:
    """A stand-in for ``make wheelhouse``'s folder: the files a fetch carries (the real one
    is built and installed from by .ci/run, which needs PyPI)."""
    folder.mkdir(parents=True)
    (folder / f"airgap-{version}-py3-none-any.whl").write_bytes(os.urandom(5000))
    (folder / "PyYAML-6.0.2-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(os.urandom(900))
    (folder / "requirements.txt").write_text(f"airgap=={version} --hash=sha256:{'0' * 64}\n")
    script = folder / "install.sh"
    script.write_text("#!/bin/sh\necho install\n")
    script.chmod(0o755)
    return folder


@pytest.fixture(scope="session")
def rich_bundle(tmp_path_factory: pytest.TempPathFactory, signer: SigningKey,
                signer_public_key: Path, agent_image: TestImage, registry: DockerRegistry,
                operator: SigningKey) -> Iterator[Path]:
    """A bundle with everything this airgap carries: the registry and the agent image
    (sharing a layer), agent binaries, endpoint's package, Elastic Defend's artifacts for
    Endpoint 9.0.0 and a wheelhouse, signed by the operator. Read it, or copy it."""
    from airgap.fetch.run import FetchSettings, fetch
    from airgap.manifest import load_manifest
    from airgap.manifest.plan import make_plan

    work = tmp_path_factory.mktemp("rich")
    artifacts = ArtifactServer(work / "artifacts", signer).start()
    epr = EprServer(work / "epr", signer).start()
    defend = DefendServer(work / "defend").start()
    try:
        epr.add("endpoint", "9.0.0")
        defend.publish("9.0.0", "1.0.137", DEFEND_ARTIFACTS)
        manifest = work / "airgap.yaml"
        manifest.write_text(yaml.safe_dump({
            "apiVersion": "airgap/v1", "kind": "Bundle", "stack": {"version": TEST_TAG},
            "platforms": {"arch": ["x86_64", "arm64"]}, "integrations": ["endpoint"],
            "artifacts": {"products": ["elastic-agent"]}, "images": ["elastic-agent"],
            "sources": {"registry": registry.url, "artifacts": artifacts.url,
                        "epr": epr.url, "security": defend.url},
            "trust": {"keys": [str(signer_public_key)]}}))
        for item in make_plan(load_manifest(manifest)).artifacts:
            artifacts.publish(item.path, 20_000)
        bundle = work / "bundle"
        fetch(FetchSettings(manifest, bundle, sign_with=operator.fingerprint,
                            gnupg_home=operator.home,
                            with_tool=make_wheelhouse(work / "airgap-0.1.0-wheelhouse")),
              NullReporter())
        yield bundle
    finally:
        defend.stop()
        artifacts.stop()
        epr.stop()
