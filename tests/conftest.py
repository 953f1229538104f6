"""Shared fixtures: the loopback peers every test module can use.

Session-scoped peers start once: the real docker-registry and dockerd (Debian packages),
and our stand-ins for artifacts.elastic.co and the package registry API. Function-scoped
wrappers hand out the same peers with their fault rules and request logs cleared.

A peer whose program is missing skips its tests with the reason, except under
``CI=true``, where a missing peer is a failure: CI must exercise everything.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.artifacts import ArtifactServer
from tests.peers.epr import EprServer
from tests.peers.gpgkeys import SigningKey
from tests.peers.images import TestImage, build_test_image, push_image
from tests.peers.processes import Credentials, Dockerd, DockerRegistry

IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_REPOSITORY = "package-registry/distribution"
TEST_TAG = "9.0.0"


def require_programs(*programs: str) -> None:
    """Skip (or, in CI, fail) when one of ``programs`` is not installed."""
    missing = [p for p in programs if shutil.which(p) is None]
    if not missing:
        return
    reason = (f"needs {', '.join(missing)} (Debian packages docker-registry, docker.io, "
              "skopeo, busybox-static; `make setup` installs them)")
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


# -- stand-ins -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def artifact_server_session(signer: SigningKey,
                            tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArtifactServer]:
    server = ArtifactServer(tmp_path_factory.mktemp("artifacts"), signer).start()
    yield server
    server.stop()


@pytest.fixture
def artifact_server(artifact_server_session: ArtifactServer) -> ArtifactServer:
    """The artifacts.elastic.co stand-in, with no faults and an empty request log."""
    artifact_server_session.faults.clear()
    artifact_server_session.redirect = False
    return artifact_server_session


@pytest.fixture(scope="session")
def epr_server_session(signer: SigningKey,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[EprServer]:
    server = EprServer(tmp_path_factory.mktemp("epr"), signer).start()
    for name, versions in {"system": ("1.60.0", "2.1.0", "2.2.0-beta1"),
                           "nginx": ("1.20.0", "2.0.0"),
                           "fleet_server": ("1.6.0",),
                           "endpoint": ("9.0.0",)}.items():
        for version in versions:
            server.add(name, version)
    server.add("nginx", "3.0.0", kibana="^9.1.0")
    server.add("legacy_only", "1.0.0", kibana="^7.17.0")
    yield server
    server.stop()


@pytest.fixture
def epr_server(epr_server_session: EprServer) -> EprServer:
    """The package registry API stand-in, with no faults and an empty request log."""
    epr_server_session.faults.clear()
    epr_server_session.redirect = False
    return epr_server_session


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
