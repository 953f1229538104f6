"""The docker-loadable tar: streamed from an OCI layout, checked on the way, cut short by a
gate, and exactly as long as announced."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from airgap import oci
from airgap.errors import ChecksumMismatchError
from airgap.oci.dockertar import BLOCK, CHUNK, archive_size, archive_stream
from tests.peers.images import TestImage


def layout_of(bundle: Path) -> oci.Layout:
    return oci.Layout(bundle / "images")


def test_a_refusing_gate_cuts_the_tar_inside_its_last_member(image_bundle: Path) -> None:
    selection = oci.select_platform(layout_of(image_bundle), "linux/amd64")
    whole = bytearray()
    for piece in archive_stream(layout_of(image_bundle), selection):
        whole += piece  # each piece is only valid until the next
    received = bytearray()
    seen_at_gate: list[int] = []

    def refuse() -> None:
        seen_at_gate.append(len(received))
        raise RuntimeError("the bundle did not pass")

    with pytest.raises(RuntimeError, match="did not pass"):
        for piece in archive_stream(layout_of(image_bundle), selection, gate=refuse):
            received += piece
    # Everything but the last chunk went out before the gate was asked, and nothing after.
    assert seen_at_gate == [len(received)]
    assert whole.startswith(received)
    assert 0 < len(whole) - len(received) <= CHUNK + 3 * BLOCK
    # A tar cut inside a member is an error for any reader; one cut between members
    # could pass for a complete archive.
    with tarfile.open(fileobj=io.BytesIO(received)) as tar, \
            pytest.raises(tarfile.ReadError, match="unexpected end of data"):
        for member in tar:
            handle = tar.extractfile(member)
            if handle is not None:
                handle.read()


def test_without_layer_digests_the_manifest_and_config_are_still_checked(
        image_bundle: Path, pushed_image: TestImage, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(image_bundle, bundle)
    blobs = bundle / "images/blobs/sha256"
    layer = blobs / pushed_image.shared_layers[0][7:]
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0x01
    layer.write_bytes(bytes(data))
    layout = layout_of(bundle)
    selection = oci.select_platform(layout, "linux/amd64")
    # A damaged layer goes through (the caller verifies layers, the engine diff IDs) ...
    assert sum(len(p) for p in archive_stream(layout, selection, check_digests=False)) > 0
    # ... a damaged config, which names the layers, does not.
    config = blobs / selection.image.config.hex
    config.write_text(config.read_text().replace("amd64", "arm64"))
    with pytest.raises(ChecksumMismatchError):
        for _ in archive_stream(layout, selection, check_digests=False):
            pass


@pytest.mark.parametrize("tags", [(), ("registry.local/epr:9.0.0", "epr.local/other:1")])
def test_archive_size_is_the_length_of_the_stream(image_bundle: Path,
                                                  tags: tuple[str, ...]) -> None:
    for platform in ("linux/amd64", "linux/arm64"):
        layout = layout_of(image_bundle)
        selection = oci.select_platform(layout, platform)
        streamed = sum(len(piece) for piece in archive_stream(layout, selection, tags))
        assert archive_size(selection, tags) == streamed
