"""``load --run --replace`` is reversible: the container in the way is stopped and set
aside, removed only once its successor is healthy, and put back as it was when the
successor fails."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import docker as docker_sdk
import httpx
import pexpect

from tests.conftest import TEST_REPOSITORY, docker
from tests.peers.net import free_port
from tests.peers.processes import Dockerd
from tests.peers.tls import make_certificate
from tests.terminal import at_terminal, in_pipe, piped, signal_when, unstamped

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


def _names(client: docker_sdk.DockerClient) -> list[str]:
    return [c.name for c in client.containers.list(all=True)]


def test_sigterm_while_the_old_registry_stops_puts_it_back_and_says_so(
        golden_bundle: Path, engine: Dockerd, operator_key: Path) -> None:
    port, old = running_registry(golden_bundle, engine, operator_key)
    client = docker_sdk.DockerClient(base_url=engine.host)
    # The registry, PID 1 of its container, ignores SIGTERM: its stop takes Docker's 10 s,
    # the time the old container is set aside under another name.
    process = piped("load", str(golden_bundle), "--run", "--replace", "--network", "host",
                    "--port", str(port), "--skip-verify", "--json")
    signal_when(process, lambda: any("-replaced-" in n for n in _names(client)),
                signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    log = unstamped(err)
    assert log[-1].startswith("terminated: ") and f"{BACK} (running again)" in log[-1], log
    assert "run the same command again" in log[-1] and "Traceback" not in err
    document = json.loads(out)
    assert document["status"] == "failed" and document["exit_code"] == 143
    assert document["error"]["details"] == [f"{BACK} (running again)"], document
    assert containers(engine) == [old]
    assert state(engine)["Name"] == "/package-registry"
    deadline = time.monotonic() + 30  # the engine finishes its stop: it starts again after
    while not (state(engine)["State"]["Running"] and _healthy(port)):  # type: ignore[index]
        assert time.monotonic() < deadline, state(engine)["State"]
        time.sleep(0.5)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_ctrl_c_while_the_new_registry_starts_removes_it_and_puts_the_old_one_back(
        golden_bundle: Path, engine: Dockerd, operator_key: Path) -> None:
    port, old = running_registry(golden_bundle, engine, operator_key)
    client = docker_sdk.DockerClient(base_url=engine.host)

    def once_the_new_one_starts(child: pexpect.spawn) -> None:
        deadline = time.monotonic() + 60
        while len(client.containers.list(all=True)) < 2:  # the old one aside, the new one
            assert time.monotonic() < deadline, "the new registry never came"
            time.sleep(0.01)
        child.sendintr()  # Ctrl-C, while airgap waits for its health

    seen = at_terminal("load", str(golden_bundle), "--run", "--replace", "--network", "host",
                       "--port", str(port), "--skip-verify", when=once_the_new_one_starts,
                       env={"DOCKER_HOST": engine.host})
    seen.assert_no_traceback()
    assert seen.code == 130, seen.text
    [line] = [line for line in seen.lines if line.startswith("interrupted: ")]
    assert "the container package-registry it created was removed" in line, line
    assert f"{BACK} (running again)" in line, line
    assert containers(engine) == [old]
    assert state(engine)["State"]["Running"]  # type: ignore[index]
    assert _healthy(port)


def test_json_of_a_replacement_names_the_container_it_removed_once_the_new_was_healthy(
        golden_bundle: Path, engine: Dockerd, operator_key: Path) -> None:
    port, old = running_registry(golden_bundle, engine, operator_key)
    result = in_pipe("load", str(golden_bundle), "--run", "--replace", "--network", "host",
                     "--port", str(port), "--skip-verify", "--json",
                     env={"DOCKER_HOST": engine.host})
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"format", "command", "status", "exit_code", "result",
                             "problems", "warnings", "error"}
    running = document["result"]["running"]
    [new] = containers(engine)
    assert new != old
    assert running == {"container": "package-registry", "url": f"http://127.0.0.1:{port}",
                       "reachable": True, "container_id": new,
                       "replaced": {"container": "package-registry", "id": old,
                                    "was_running": True, "removed": True, "left_as": None}}
    fresh = in_pipe("load", str(golden_bundle), "--run", "--network", "host", "--port",
                    str(free_port()), "--name", "another", "--skip-verify", "--json",
                    env={"DOCKER_HOST": engine.host})
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)["result"]["running"]["replaced"] is None
    shown = in_pipe("load", str(golden_bundle), "--run", "--replace", "--network", "host",
                    "--port", str(port), "--skip-verify", env={"DOCKER_HOST": engine.host})
    assert shown.returncode == 0, shown.stderr
    assert f"replaced: container package-registry ({new[:12]}): removed once the new one " \
        "was healthy" in shown.stdout.splitlines(), shown.stdout
