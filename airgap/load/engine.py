"""The Docker engine of the isolated side: the image goes in as a stream.

Talks to the engine at ``DOCKER_HOST`` (or the default socket) through the docker SDK.
The image goes in as a stream built from the bundle's blobs: no tar is written to disk.
Running the package registry from it is :mod:`airgap.load.container`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airgap import oci
from airgap.bundle.layout import IMAGES
from airgap.errors import AirgapError, ToolMissingError
from airgap.oci.dockertar import archive_size, archive_stream
from airgap.platforms import oci_architecture
from airgap.reporter import Reporter

if TYPE_CHECKING:
    # The docker SDK takes a third of a second to import: only `load` pays for it.
    from docker import DockerClient


@dataclass(frozen=True)
class LoadedImage:
    """The image as the engine now holds it."""

    reference: str
    tags: tuple[str, ...]
    image_id: str
    platform: str


def connect() -> DockerClient:
    """A docker SDK client for the engine at DOCKER_HOST, or a clear error."""
    try:
        import docker
        import docker.errors
    except ImportError:  # pragma: no cover - a declared dependency
        raise ToolMissingError("the docker Python SDK is not installed") from None
    where = os.environ.get("DOCKER_HOST", "the default socket (unix:///var/run/docker.sock)")
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        raise AirgapError(f"cannot reach the Docker engine at {where}: {exc}",
                          details=["start Docker, or point DOCKER_HOST at the engine"]) from None
    return client


def engine_platform(client: DockerClient) -> str:
    """The engine's platform, like ``linux/amd64``."""
    version = client.version()
    return f"{version.get('Os', 'linux')}/{oci_architecture(str(version.get('Arch', '')))}"


class LoadStopped(AirgapError):
    """The image stream to the engine was stopped before its end."""


class StreamGate:
    """Holds back the end of an image stream until :meth:`open`; :meth:`refuse` stops
    the stream at its next chunk, or at its end, even once opened. Both may be called
    from any thread."""

    def __init__(self) -> None:
        self._settled = threading.Event()
        self._stopped = False

    def open(self) -> None:
        """Let the stream end."""
        self._settled.set()

    def refuse(self) -> None:
        """Stop the stream short of its end."""
        self._stopped = True
        self._settled.set()

    def check(self) -> None:
        """Raise :class:`LoadStopped` once refused."""
        if self._stopped:
            raise LoadStopped("the image stream was stopped before its end")

    def wait(self) -> None:
        """Return once opened; raise :class:`LoadStopped` once refused."""
        self._settled.wait()
        self.check()


class _SizedBody:
    """A request body of known length: requests sends it with a Content-Length, so
    urllib3 passes each piece to the socket as it is (chunked framing would copy every
    piece into a new one, a GiB of copies for a GiB image)."""

    def __init__(self, pieces: Iterator[bytes | memoryview], size: int) -> None:
        self._pieces = pieces
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes | memoryview]:
        return self._pieces


def select(client: DockerClient, bundle: Path, platform: str | None,
           reference: str | None = None) -> oci.PlatformSelection:
    """The platform of the bundle's image (``reference``, when it holds several) to load:
    ``platform``, else the engine's; a usage error when the bundle has no such platform."""
    return oci.select_platform(oci.Layout(bundle / IMAGES), platform or engine_platform(client),
                               reference)


def load_image(client: DockerClient, bundle: Path, extra_tags: tuple[str, ...], reporter: Reporter,
               platform: str | None = None, gate: StreamGate | None = None,
               reference: str | None = None) -> LoadedImage:
    """Stream the engine's platform of the bundle's image (the one ``reference`` names,
    when the bundle holds several) into the engine.

    With a ``gate``, the stream's last chunk waits for it (see
    :func:`~airgap.oci.dockertar.archive_stream`); refused, the engine gets a cut tar,
    loads nothing, and :class:`LoadStopped` is raised from here. A gated stream leaves
    the layers' digests to whatever the gate waits for (and to the engine's own check
    against the config's diff IDs).
    """
    import docker.errors
    import requests

    wanted = platform or engine_platform(client)
    layout = oci.Layout(bundle / IMAGES)
    selection = oci.select_platform(layout, wanted, reference)
    size = archive_size(selection, extra_tags)
    key = f"docker load {selection.reference}"
    reporter.task_started(key, f"docker load {selection.reference} ({wanted})", size)

    def counted() -> Iterator[bytes | memoryview]:
        for piece in archive_stream(layout, selection, extra_tags,
                                    gate.wait if gate is not None else None,
                                    check_digests=gate is None):
            if gate is not None:
                gate.check()
            reporter.task_advanced(key, len(piece))
            yield piece
        reporter.task_waiting(key, "sent: the engine is storing the layers")

    try:
        # quiet, as the docker CLI asks when not on a terminal: the engine then does not
        # stream per-layer progress back while it is busy storing layers.
        body = _SizedBody(counted(), size)
        for message in client.api.load_image(body, quiet=True):  # type: ignore[no-untyped-call]
            if isinstance(message, dict) and "errorDetail" in message:
                raise docker.errors.ImageLoadError(message["errorDetail"].get("message"))
        image = client.images.get(selection.reference)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        reporter.task_finished(key, "failed", str(exc))
        raise AirgapError(f"the Docker engine refused the image: {exc}") from exc
    except BaseException:  # a damaged blob, or the gate stopped the stream
        reporter.task_finished(key, "failed")
        raise
    reporter.task_finished(key, "done", f"stored as {str(image.id)[:19]}")
    accepted = {selection.image.config.digest, selection.manifest.digest}
    if image.id not in accepted:
        raise AirgapError(f"the engine holds {selection.reference} as {image.id}, not as the "
                          f"bundle's {selection.image.config.digest}")
    return LoadedImage(selection.reference, tuple(image.tags), image.id, wanted)
