"""Image names: what airgap hands Docker as a tag must be what Docker accepts."""

from __future__ import annotations

import pytest

from airgap.errors import UsageError
from airgap.oci.reference import docker_tag, parse_reference


def test_a_reference_is_read_as_docker_reads_it() -> None:
    assert str(parse_reference("nginx")) == "docker.io/library/nginx:latest"
    assert str(parse_reference("localhost:5000/a/b:1.0")) == "localhost:5000/a/b:1.0"


@pytest.mark.parametrize(("given", "kept"), [
    ("epr.local/registry", "epr.local/registry:latest"),
    ("registry.corp:5000/elastic/distribution:9.0.0",
     "registry.corp:5000/elastic/distribution:9.0.0"),
    ("[::1]:5000/epr", "[::1]:5000/epr:latest"),
    ("Reg.Corp/epr:V1", "Reg.Corp/epr:V1"),  # capitals in a host and a tag are fine
    ("x" * 237, "x" * 237 + ":latest"),  # docker.io/library/ + 237 = 255
    ("reg.example/" + "y" * 230 + ":" + "t" * 20, "reg.example/" + "y" * 230 + ":" + "t" * 20),
])
def test_names_docker_accepts(given: str, kept: str) -> None:
    assert docker_tag(given) == kept


@pytest.mark.parametrize("given", [
    "Bad Name", "UPPER/epr", "epr:", "epr:ü", "épr/x", "registry.corp:500O/x",
    "x" * 238, "a/b:" + "t" * 129, "epr@sha256:" + "0" * 64,
])
def test_names_docker_refuses(given: str) -> None:
    with pytest.raises(UsageError, match="not an image name Docker accepts"):
        docker_tag(given)
