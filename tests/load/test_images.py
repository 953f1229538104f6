"""The bundle's other images on the isolated side: each loaded into the real dockerd,
pushed to a real registry, exported, or only those ``--image`` names."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from airgap.bundle.description import read_description
from airgap.cli import main
from airgap.errors import UsageError
from airgap.load.select import select_images
from tests.conftest import AGENT_REPOSITORY, TEST_REPOSITORY
from tests.peers.processes import Dockerd, DockerRegistry
from tests.terminal import in_pipe

REGISTRY_IMAGE = f"docker.elastic.co/{TEST_REPOSITORY}:9.0.0"
AGENT_IMAGE = f"docker.elastic.co/{AGENT_REPOSITORY}:9.0.0"


def images_in(engine: Dockerd) -> set[str]:
    listed = subprocess.run(["docker", "image", "ls", "--format",
                             "{{.Repository}}:{{.Tag}}"], env=engine.env(),
                            capture_output=True, text=True, check=True).stdout
    return set(listed.split())


@pytest.mark.parametrize(("names", "expected"), [
    ((), [REGISTRY_IMAGE, AGENT_IMAGE]),
    (("elastic-agent",), [AGENT_IMAGE]),
    ((AGENT_IMAGE, "package-registry/distribution"), [REGISTRY_IMAGE, AGENT_IMAGE]),
    (("docker.elastic.co/elastic-agent/elastic-agent",), [AGENT_IMAGE]),
])
def test_names_choose_images(rich_bundle: Path, names: tuple[str, ...],
                             expected: list[str]) -> None:
    assert select_images(read_description(rich_bundle), names) == expected


def test_a_name_the_bundle_does_not_hold_is_a_usage_error(rich_bundle: Path) -> None:
    with pytest.raises(UsageError, match="'elastic-agent-wolfi': the bundle has no image"):
        select_images(read_description(rich_bundle), ["elastic-agent-wolfi"])
    assert main(["load", str(rich_bundle), "--docker", "--image", "nginx"]) == 2


def test_load_docker_loads_every_image(rich_bundle: Path, engine: Dockerd,
                                      operator_key: Path) -> None:
    assert main(["load", str(rich_bundle), "--docker", "--trust-key", str(operator_key),
                 "--quiet"]) == 0
    assert {REGISTRY_IMAGE, AGENT_IMAGE} <= images_in(engine)


def test_load_docker_loads_only_the_images_named(rich_bundle: Path, engine: Dockerd,
                                                 operator_key: Path) -> None:
    assert main(["load", str(rich_bundle), "--docker", "--image", "elastic-agent",
                 "--tag", "agents.corp/elastic-agent:9.0.0", "--trust-key", str(operator_key),
                 "--quiet"]) == 0
    loaded = images_in(engine)
    assert {AGENT_IMAGE, "agents.corp/elastic-agent:9.0.0"} <= loaded
    assert REGISTRY_IMAGE not in loaded


def test_load_registry_pushes_each_image(rich_bundle: Path, operator_key: Path,
                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    registry = DockerRegistry(tmp_path_factory.mktemp("images-registry")).start()
    try:
        target = f"{registry.host}/mirror"
        assert main(["load", str(rich_bundle), "--registry", target, "--insecure",
                     "--trust-key", str(operator_key), "--quiet"]) == 0
        description = json.loads((rich_bundle / "bundle.json").read_text())
        for repository, digest in ((TEST_REPOSITORY, description["image"]["digest"]),
                                   (AGENT_REPOSITORY, description["images"][0]["digest"])):
            inspected = subprocess.run(
                ["skopeo", "inspect", "--tls-verify=false",
                 f"docker://{target}/{repository}:9.0.0"], capture_output=True, text=True,
                check=True)
            assert json.loads(inspected.stdout)["Digest"] == digest
    finally:
        registry.stop()


def test_load_json_tells_every_image_loaded_and_pushed_and_defends_artifacts(
        rich_bundle: Path, operator_key: Path, engine: Dockerd, tmp_path: Path,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    registry = DockerRegistry(tmp_path_factory.mktemp("json-registry")).start()
    try:
        result = in_pipe("load", str(rich_bundle), "--docker", "--registry",
                         f"{registry.host}/mirror", "--insecure", "--artifacts",
                         str(tmp_path / "served"), "--trust-key", str(operator_key), "--json",
                         env={"DOCKER_HOST": engine.host})
    finally:
        registry.stop()
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)["result"]
    assert done["docker"]["reference"] == REGISTRY_IMAGE
    assert [d["reference"] for d in done["more_docker"]] == [AGENT_IMAGE]
    assert done["pushed"]["reference"] == f"{registry.host}/mirror/{TEST_REPOSITORY}:9.0.0"
    assert [p["reference"] for p in done["pushed_more"]] == \
        [f"{registry.host}/mirror/{AGENT_REPOSITORY}:9.0.0"]
    description = json.loads((rich_bundle / "bundle.json").read_text())
    assert done["pushed_more"][0]["digest"] == description["images"][0]["digest"]
    defend = done["defend"]
    assert defend["directory"].startswith(str(tmp_path / "served"))
    assert defend["added"] > 0 and defend["manifests"] and "9.0.0" in defend["manifests"][0]


def test_export_image_writes_the_image_named(rich_bundle: Path, operator_key: Path,
                                            tmp_path: Path) -> None:
    trust = ("--trust-key", str(operator_key))
    assert main(["export-image", str(rich_bundle), "--image", "elastic-agent", "--platform",
                 "linux/arm64", "-o", str(tmp_path / "agent.tar"), *trust]) == 0
    with tarfile.open(tmp_path / "agent.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [AGENT_IMAGE]
    assert main(["export-image", str(rich_bundle), "--platform", "linux/amd64", "-o",
                 str(tmp_path / "registry.tar"), *trust]) == 0
    with tarfile.open(tmp_path / "registry.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [REGISTRY_IMAGE]
    read = subprocess.run(["skopeo", "inspect", f"docker-archive:{tmp_path / 'agent.tar'}"],
                          capture_output=True, text=True)
    assert read.returncode == 0, read.stderr
