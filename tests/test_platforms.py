"""The one table of architectures and their names."""

from __future__ import annotations

import platform

import pytest

from airgap import elastic
from airgap.platforms import find_architecture, host_platform, oci_architecture


@pytest.mark.parametrize(("name", "elastic_name", "oci"), [
    ("x86_64", "x86_64", "amd64"), ("AMD64", "x86_64", "amd64"),
    ("aarch64", "arm64", "arm64"), ("arm64", "arm64", "arm64"),
])
def test_every_name_finds_its_architecture(name: str, elastic_name: str, oci: str) -> None:
    found = find_architecture(name)
    assert found is not None and (found.elastic, found.oci) == (elastic_name, oci)


def test_an_unknown_architecture_passes_through_as_it_is() -> None:
    assert find_architecture("ppc64le") is None
    assert oci_architecture("PPC64LE") == "ppc64le"


def test_this_machine_and_elastic_s_names_come_from_the_table() -> None:
    assert host_platform() == f"linux/{oci_architecture(platform.machine())}"
    assert elastic.ARCH_NAMES == ("x86_64", "arm64")
    assert elastic.ARCH_ALIASES == {"amd64": "x86_64", "aarch64": "arm64"}
    assert elastic.IMAGE_PLATFORMS == {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
