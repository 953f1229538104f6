"""The bundle's other images on the isolated side: loading or pushing each of them
(:mod:`airgap.load.select` says which ones a command means)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from airgap.load.engine import LoadedImage, load_image
from airgap.load.push import PushResult, PushTarget, push_image
from airgap.net.download import Downloader
from airgap.oci.reference import parse_reference
from airgap.reporter import Reporter

if TYPE_CHECKING:
    from docker import DockerClient


def load_more(client: DockerClient, bundle: Path, references: Sequence[str],
              reporter: Reporter, platform: str | None) -> tuple[LoadedImage, ...]:
    """Load each of ``references`` into the engine, one after the other (the bundle is
    verified by then: every blob is checked against its digest on the way)."""
    return tuple(load_image(client, bundle, (), reporter, platform, reference=reference)
                 for reference in references)


def push_each(bundle: Path, target: PushTarget, references: Sequence[str],
              downloader: Downloader, insecure: bool) -> tuple[PushResult, ...]:
    """Push each of ``references``, every platform and its index, one after the other."""
    results = []
    for reference in references:
        parsed = parse_reference(reference)
        results.append(push_image(bundle, target, parsed.repository, parsed.tag, downloader,
                                  insecure, reference=reference))
    return tuple(results)
