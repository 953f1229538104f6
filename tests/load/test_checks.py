"""load checks everything it can before it verifies: a mistake costs seconds, not the time
of a verification; what no retry can mend is not retried; a start that fails cleans up."""

from __future__ import annotations

import re
import shutil
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import REGISTRY_CREDENTIALS, TEST_REPOSITORY, docker
from tests.peers.net import free_port
from tests.peers.processes import Credentials, Dockerd, DockerRegistry
from tests.peers.tls import make_certificate
from tests.terminal import in_pipe

AGENT = "downloads/beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"
REFERENCE = f"docker.elastic.co/{TEST_REPOSITORY}:9.0.0"


@pytest.fixture
def damaged(golden_bundle: Path, tmp_path: Path) -> Path:
    """A bundle that fails verification: a check that comes first is seen before it."""
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    (bundle / AGENT).write_bytes(b"x")
    return bundle


def test_a_port_in_use_is_refused_before_the_bundle_is_verified(damaged: Path,
                                                                engine: Dockerd) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = in_pipe("load", str(damaged), "--docker", "--run", "--network", "host",
                         "--port", str(port), env={"DOCKER_HOST": engine.host})
    assert result.returncode == 2, result.stderr
    assert f"port {port} is in use" in result.stderr and "--port" in result.stderr
    assert "failed verification" not in result.stderr


def test_a_name_taken_and_a_missing_platform_are_refused_first(
        golden_bundle: Path, damaged: Path, engine: Dockerd, operator_key: Path) -> None:
    env = {"DOCKER_HOST": engine.host}
    loaded = in_pipe("load", str(golden_bundle), "--docker", "--trust-key", str(operator_key),
                     env=env)
    assert loaded.returncode == 0, loaded.stderr
    # Into a log, the wait for the engine after the last byte is a line of its own.
    assert re.search(r"docker load \S+ \(linux/\w+\): sent: the engine is storing the "
                     r"layers$", loaded.stderr, re.MULTILINE), loaded.stderr
    docker(engine, "create", "--name", "package-registry", "--pull", "never", REFERENCE)
    taken = in_pipe("load", str(damaged), "--run", env=env)
    assert taken.returncode == 2, taken.stderr
    assert "a container named package-registry exists already" in taken.stderr
    assert "--replace" in taken.stderr and "failed verification" not in taken.stderr
    platform = in_pipe("load", str(damaged), "--docker", "--platform", "linux/ppc64le", env=env)
    assert platform.returncode == 2, platform.stderr
    assert "has no linux/ppc64le platform" in platform.stderr


def test_a_key_the_registry_cannot_read_is_refused_first(damaged: Path, engine: Dockerd,
                                                         tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path / "tls")
    key.chmod(0o600)  # root's: uid 1000 in the container cannot read it
    result = in_pipe("load", str(damaged), "--docker", "--run", "--tls-cert", str(cert),
                     "--tls-key", str(key), env={"DOCKER_HOST": engine.host})
    assert result.returncode == 2, result.stderr
    assert f"--tls-key {key} cannot be read by uid 1000" in result.stderr
    assert f"chown 1000 {key}" in result.stderr


def test_refused_registry_credentials_name_the_host_before_verifying(
        damaged: Path, auth_registry: DockerRegistry, tmp_path: Path) -> None:
    wrong = Credentials(REGISTRY_CREDENTIALS.username, "not the password")
    result = in_pipe("load", str(damaged), "--registry", f"{auth_registry.host}/epr",
                     "--insecure", env={"AIRGAP_REGISTRY": auth_registry.host,
                                        "AIRGAP_REGISTRY_USERNAME": wrong.username,
                                        "AIRGAP_REGISTRY_PASSWORD": wrong.password,
                                        "DOCKER_CONFIG": str(tmp_path)})
    assert result.returncode == 1, result.stderr
    assert f"docker login {auth_registry.host}" in result.stderr
    assert "failed verification" not in result.stderr
    assert wrong.password not in result.stderr


def test_plain_http_needs_insecure_and_is_never_upgraded(golden_bundle: Path,
                                                        registry: DockerRegistry) -> None:
    refused = in_pipe("load", str(golden_bundle), "--registry", f"http://{registry.host}/x")
    assert refused.returncode == 2 and "plain HTTP needs --insecure" in refused.stderr
    pushed = in_pipe("load", str(golden_bundle), "--registry", f"http://{registry.host}/plain",
                     "--insecure", "--skip-verify")
    assert pushed.returncode == 0, pushed.stderr
    assert f"pushed: {registry.host}/plain/" in pushed.stdout


def test_permanent_network_errors_are_not_retried(golden_bundle: Path,
                                                  registry: DockerRegistry) -> None:
    started = time.monotonic()
    unknown = in_pipe("load", str(golden_bundle), "--registry", "no-such-host.invalid:5000")
    assert unknown.returncode == 1 and "does not resolve" in unknown.stderr
    plain = in_pipe("load", str(golden_bundle), "--registry", f"https://{registry.host}/x")
    assert plain.returncode == 1 and "does not speak TLS" in plain.stderr
    assert "retry" not in unknown.stderr + plain.stderr
    assert time.monotonic() - started < 20


def test_a_registry_that_does_not_start_is_removed_and_said_so(
        golden_bundle: Path, engine: Dockerd, operator_key: Path, tmp_path: Path) -> None:
    # A certificate and key that do not belong together: the server in the image exits.
    cert, _ = make_certificate(tmp_path / "one", name="a")
    _, key = make_certificate(tmp_path / "two", name="b")
    cert.chmod(0o644)
    key.chmod(0o644)
    port = free_port()
    result = in_pipe("load", str(golden_bundle), "--docker", "--run", "--network", "host",
                     "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key),
                     "--name", "doomed", "--trust-key", str(operator_key),
                     env={"DOCKER_HOST": engine.host})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the container doomed it created was removed" in result.stderr
    assert docker(engine, "ps", "-aq", "--filter", "name=doomed").stdout.strip() == ""


def test_run_says_when_the_registry_is_reachable_only_inside_the_engine(
        golden_bundle: Path, engine: Dockerd, operator_key: Path) -> None:
    # No bridge on this engine: a container on the "none" network is healthy inside and
    # reachable from nowhere else.
    port = free_port()
    result = in_pipe("load", str(golden_bundle), "--docker", "--run", "--network", "none",
                     "--port", str(port), "--trust-key", str(operator_key),
                     env={"DOCKER_HOST": engine.host})
    assert result.returncode == 0, result.stderr
    assert "reachable only inside the engine's network" in result.stdout + result.stderr
