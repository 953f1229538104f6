"""The bundle's other images on the isolated side: loading or pushing each of them
(:mod:`airgap.load.select` says which ones a command means)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from airgap.load.engine import LoadedImage, load_image
from airgap.load.push import PushResult, PushTarget, connect_registry, push_image
from airgap.net.download import Downloader
from airgap.oci.reference import parse_reference
from airgap.oci.registry import RegistryClient
from airgap.reporter import Reporter

if TYPE_CHECKING:
    from docker import DockerClient


def load_more(client: DockerClient, bundle: Path, references: Sequence[str],
              reporter: Reporter, platform: str | None) -> tuple[LoadedImage, ...]:
    """Load each of ``references`` into the engine, one after the other (the bundle is
    verified by then: every blob is checked against its digest on the way)."""
    return tuple(load_image(client, bundle, (), reporter, platform, reference=reference)
                 for reference in references)


def connect_each(target: PushTarget, references: Sequence[str], downloader: Downloader,
                 insecure: bool) -> list[RegistryClient]:
    """A client for the repository of each of ``references`` at ``target``, each checked
    (the registry answers, the credentials may push) before anything is verified."""
    return [connect_registry(target, parse_reference(reference).repository, downloader,
                             insecure) for reference in references]


def push_each(bundle: Path, clients: Sequence[RegistryClient], references: Sequence[str]
              ) -> tuple[PushResult, ...]:
    """Push each of ``references``, every platform and its index, one after the other."""
    return tuple(push_image(bundle, client, parse_reference(reference).tag,
                            reference=reference)
                 for client, reference in zip(clients, references, strict=True))
