"""One OCI layout holding several images: each found by its name, none by accident."""

from __future__ import annotations

from pathlib import Path

import pytest

from airgap import oci
from airgap.errors import UsageError
from tests.conftest import AGENT_REPOSITORY, TEST_REPOSITORY

REGISTRY_IMAGE = f"docker.elastic.co/{TEST_REPOSITORY}:9.0.0"
AGENT_IMAGE = f"docker.elastic.co/{AGENT_REPOSITORY}:9.0.0"


def test_each_image_is_found_by_its_reference(rich_bundle: Path) -> None:
    layout = oci.Layout(rich_bundle / "images")
    assert list(oci.named_images(layout)) == [REGISTRY_IMAGE, AGENT_IMAGE]
    registry_top, _ = oci.image_platforms(layout, REGISTRY_IMAGE)
    agent_top, manifests = oci.image_platforms(layout, AGENT_IMAGE)
    assert registry_top.digest != agent_top.digest and len(manifests) == 2
    selection = oci.select_platform(layout, "linux/arm64", AGENT_IMAGE)
    assert selection.reference == AGENT_IMAGE and selection.tag == AGENT_IMAGE
    assert oci.select_platform(layout, "linux/arm64", REGISTRY_IMAGE).tag == "9.0.0"


def test_several_images_and_no_name_is_a_question_not_a_guess(rich_bundle: Path) -> None:
    layout = oci.Layout(rich_bundle / "images")
    with pytest.raises(UsageError, match="holds 2 images"):
        oci.image_platforms(layout)
    with pytest.raises(UsageError, match="has no image docker.elastic.co/x/y:1"):
        oci.image_platforms(layout, "docker.elastic.co/x/y:1")


def test_a_single_image_layout_needs_no_name(image_bundle: Path) -> None:
    _, manifests = oci.image_platforms(oci.Layout(image_bundle / "images"))
    assert len(manifests) == 2
