"""``load --run --replace`` is reversible: the container in the way is stopped and set
aside, removed only once its successor is healthy, and put back as it was when the
successor fails."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import TEST_REPOSITORY, docker
from tests.peers.net import free_port
from tests.peers.processes import Dockerd
from tests.peers.tls import make_certificate
from tests.terminal import at_terminal, in_pipe

REFERENCE = f"docker.elastic.co/{TEST_REPOSITORY}:9.0.0"
BACK = "the container package-registry that was there is back as it was"


def mismatched_tls(folder: Path) -> list[str]:
    """A certificate and a key that do not belong together: the server in the image exits."""
    cert, _ = make_certificate(folder / "one", name="a")
    _, key = make_certificate(folder / "two", name="b")
    cert.chmod(0o644)
    key.chmod(0o644)
    return ["--tls-cert", str(cert), "--tls-key", str(key)]


def state(engine: Dockerd, name: str = "package-registry") -> dict[str, object]:
    info: dict[str, object] = json.loads(docker(engine, "inspect", name).stdout)[0]
    return info


def running_registry(bundle: Path, engine: Dockerd, operator_key: Path) -> tuple[int, object]:
    """The bundle's registry loaded and running, as the one a replacement replaces: its
    port, and its container's id."""
    port = free_port()
    first = in_pipe("load", str(bundle), "--docker", "--run", "--network", "host", "--port",
                    str(port), "--trust-key", str(operator_key),
                    env={"DOCKER_HOST": engine.host})
    assert first.returncode == 0, first.stderr
    return port, state(engine)["Id"]


def containers(engine: Dockerd) -> list[str]:
    return docker(engine, "ps", "-aq", "--no-trunc").stdout.split()


def test_a_replacement_that_fails_puts_the_running_registry_back(
        golden_bundle: Path, engine: Dockerd, operator_key: Path, tmp_path: Path) -> None:
    env = {"DOCKER_HOST": engine.host}
    port, old = running_registry(golden_bundle, engine, operator_key)
    result = in_pipe("load", str(golden_bundle), "--run", "--replace", "--network", "host",
                     "--port", str(port), *mismatched_tls(tmp_path), "--skip-verify",
                     env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the container package-registry it created was removed" in result.stderr
    assert f"{BACK} (running again)" in result.stderr, result.stderr
    assert containers(engine) == [old], "the old container is not the only one left"
    after = state(engine)
    assert after["Name"] == "/package-registry"
    assert after["State"]["Running"]  # type: ignore[index]
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200


def test_a_stopped_container_that_is_replaced_in_vain_stays_stopped(
        golden_bundle: Path, engine: Dockerd, operator_key: Path, tmp_path: Path) -> None:
    env = {"DOCKER_HOST": engine.host}
    loaded = in_pipe("load", str(golden_bundle), "--docker", "--trust-key",
                     str(operator_key), env=env)
    assert loaded.returncode == 0, loaded.stderr
    old = docker(engine, "create", "--name", "package-registry", "--pull", "never",
                 REFERENCE).stdout.strip()
    result = in_pipe("load", str(golden_bundle), "--run", "--replace", "--network", "host",
                     "--port", str(free_port()), *mismatched_tls(tmp_path), "--skip-verify",
                     env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{BACK} (stopped, as it was)" in result.stderr, result.stderr
    assert containers(engine) == [old]
    assert state(engine)["State"]["Status"] == "created"  # type: ignore[index]


def test_at_a_terminal_a_replacement_removes_the_old_registry_once_the_new_is_healthy(
        golden_bundle: Path, engine: Dockerd, operator_key: Path, tmp_path: Path) -> None:
    env = {"DOCKER_HOST": engine.host}
    port, old = running_registry(golden_bundle, engine, operator_key)
    failed = at_terminal("load", str(golden_bundle), "--run", "--replace", "--network",
                         "host", "--port", str(port), *mismatched_tls(tmp_path),
                         "--skip-verify", env=env)
    failed.assert_no_traceback()
    assert failed.code == 1, failed.text
    assert f"{BACK} (running again)" in failed.text, failed.text
    assert containers(engine) == [old]
    seen = at_terminal("load", str(golden_bundle), "--run", "--replace", "--network", "host",
                       "--port", str(port), "--skip-verify", env=env)
    seen.assert_no_traceback()
    assert seen.code == 0, seen.text
    assert f"container package-registry at http://127.0.0.1:{port}" in seen.text, seen.text
    left = containers(engine)
    assert len(left) == 1 and left != [old], "the replaced container was kept"
    assert state(engine)["Name"] == "/package-registry"
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
