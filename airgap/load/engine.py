"""The Docker engine of the isolated side: load the image, run the package registry.

Talks to the engine at ``DOCKER_HOST`` (or the default socket) through the docker SDK.
The image goes in as a stream built from the bundle's blobs: no tar is written to disk.
The container is created from the local image only; nothing is ever pulled.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from airgap import oci
from airgap.bundle.layout import IMAGES
from airgap.errors import AirgapError, ToolMissingError, UsageError, setting
from airgap.oci.dockertar import archive_size, archive_stream
from airgap.platforms import oci_architecture
from airgap.reporter import Reporter

if TYPE_CHECKING:
    # The docker SDK takes a third of a second to import: only `load` pays for it.
    from docker import DockerClient
    from docker.models.containers import Container

TLS_DIR = "/etc/airgap/tls"
REGISTRY_UID = 1000  # the distribution image runs as USER 1000


@dataclass(frozen=True)
class LoadedImage:
    """The image as the engine now holds it."""

    reference: str
    tags: tuple[str, ...]
    image_id: str
    platform: str


@dataclass(frozen=True)
class RunSettings:
    """How to run the package registry container: Elastic's "Air-gapped install" steps
    (``docker run`` of the distribution image with its port and, for HTTPS, certificate)."""

    port: int = 8080
    name: str = "package-registry"
    network: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_min_version: str | None = None
    restart: str = "unless-stopped"
    replace: bool = False
    health_timeout: float = 120.0

    def check(self) -> None:
        """Refuse options that do not go together, before anything is started or removed."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UsageError(f"give both {setting('tls_cert')} and {setting('tls_key')}, or "
                             "neither")
        if self.tls_min_version and self.tls_cert is None:
            raise UsageError(f"{setting('tls_min_version')} needs {setting('tls_cert')} and "
                             f"{setting('tls_key')}")


@dataclass(frozen=True)
class RunningRegistry:
    """A package registry container that answered /health."""

    container_id: str
    name: str
    url: str


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

    wanted = platform or engine_platform(client)
    layout = oci.Layout(bundle / IMAGES)
    selection = oci.select_platform(layout, wanted, reference)
    total = selection.manifest.size + sum(b.size for b in selection.image.blobs)
    reporter.task_started("docker-load", f"docker load {selection.reference} ({wanted})", total)

    def counted() -> Iterator[bytes | memoryview]:
        for piece in archive_stream(layout, selection, extra_tags,
                                    gate.wait if gate is not None else None,
                                    check_digests=gate is None):
            if gate is not None:
                gate.check()
            reporter.task_advanced("docker-load", len(piece))
            yield piece

    try:
        # quiet, as the docker CLI asks when not on a terminal: the engine then does not
        # stream per-layer progress back while it is busy storing layers.
        body = _SizedBody(counted(), archive_size(selection, extra_tags))
        for message in client.api.load_image(body, quiet=True):  # type: ignore[no-untyped-call]
            if isinstance(message, dict) and "errorDetail" in message:
                raise docker.errors.ImageLoadError(message["errorDetail"].get("message"))
        image = client.images.get(selection.reference)
    except docker.errors.DockerException as exc:
        reporter.task_finished("docker-load", "failed")
        raise AirgapError(f"the Docker engine refused the image: {exc}") from None
    except BaseException:  # a damaged blob, or the gate stopped the stream
        reporter.task_finished("docker-load", "failed")
        raise
    reporter.task_finished("docker-load", "done")
    accepted = {selection.image.config.digest, selection.manifest.digest}
    if image.id not in accepted:
        raise AirgapError(f"the engine holds {selection.reference} as {image.id}, not as the "
                          f"bundle's {selection.image.config.digest}")
    return LoadedImage(selection.reference, tuple(image.tags), image.id, wanted)


def _tls_mounts(settings: RunSettings, reporter: Reporter) -> tuple[dict[str, Any],
                                                                   dict[str, str]]:
    if settings.tls_cert is None or settings.tls_key is None:
        return {}, {}
    for path in (settings.tls_cert, settings.tls_key):
        info = path.stat()
        if info.st_uid != REGISTRY_UID and not info.st_mode & 0o004:
            reporter.warning(f"{path} is not readable by uid {REGISTRY_UID}, which the "
                             f"registry runs as: chown {REGISTRY_UID} it or make it readable")
    volumes = {str(settings.tls_cert.resolve()): {"bind": f"{TLS_DIR}/cert.pem", "mode": "ro"},
               str(settings.tls_key.resolve()): {"bind": f"{TLS_DIR}/key.pem", "mode": "ro"}}
    env = {"EPR_TLS_CERT": f"{TLS_DIR}/cert.pem", "EPR_TLS_KEY": f"{TLS_DIR}/key.pem"}
    return volumes, env


def run_registry(client: DockerClient, reference: str, settings: RunSettings,
                 reporter: Reporter) -> RunningRegistry:
    """Start the package registry from the local image and wait until /health answers."""
    import docker.errors

    settings.check()
    volumes, env = _tls_mounts(settings, reporter)

    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        raise UsageError(f"the engine has no image {reference}; load it with "
                         f"{setting('docker')} first") from None
    try:
        existing = client.containers.get(settings.name)
    except docker.errors.NotFound:
        existing = None
    if existing is not None and not settings.replace:
        raise UsageError(f"a container named {settings.name} exists already",
                         details=[f"remove it, give another {setting('name')}, or add "
                                  f"{setting('replace')}"])
    host = _engine_host()
    if host == "127.0.0.1" and _listening(host, settings.port) \
            and not (existing is not None and _holds_port(existing, settings.port)):
        raise UsageError(f"port {settings.port} is in use on this machine: the registry "
                         "could not listen there",
                         details=[f"choose another {setting('port')}, or stop what listens "
                                  "on it"])
    if existing is not None:
        existing.remove(force=True)
    host_network = settings.network == "host"
    inner_port = settings.port if host_network else 8080
    env["EPR_ADDRESS"] = f"0.0.0.0:{inner_port}"
    if settings.tls_min_version:
        env["EPR_TLS_MIN_VERSION"] = settings.tls_min_version
    options: dict[str, Any] = {"name": settings.name, "environment": env, "volumes": volumes,
                               "detach": True}
    scheme = "https" if settings.tls_cert else "http"
    declared = (image.attrs.get("Config") or {}).get("Healthcheck") or {}
    if declared.get("Test") and declared["Test"] != ["NONE"]:
        # The image checks http://localhost:8080/health with curl: right for its defaults
        # only. Check the port and scheme it now serves (the certificate names the
        # registry's host, not localhost: liveness only).
        options["healthcheck"] = {
            "test": ["CMD", "curl", "--silent", "--fail", *(["--insecure"] if settings.tls_cert
                                                            else []),
                     f"{scheme}://localhost:{inner_port}/health"],
            "interval": 1_000_000_000, "timeout": 5_000_000_000, "retries": 30,
            "start_period": 60_000_000_000}
    if settings.restart != "no":
        options["restart_policy"] = {"Name": settings.restart}
    if host_network:
        options["network_mode"] = "host"
    else:
        options["ports"] = {"8080/tcp": settings.port}
        if settings.network:
            options["network"] = settings.network
    try:
        container = client.containers.create(reference, **options)
        container.start()
    except docker.errors.DockerException as exc:
        raise AirgapError(f"cannot start the package registry: {exc}") from None
    url = f"{scheme}://{host}:{settings.port}"
    _wait_healthy(container, url, settings.health_timeout, reporter)
    return RunningRegistry(str(container.id), settings.name, url)


def _engine_host() -> str:
    """Where the engine publishes ports: the host of a tcp:// or ssh:// DOCKER_HOST,
    this machine for a local socket."""
    parts = urlsplit(os.environ.get("DOCKER_HOST", ""))
    if parts.scheme in ("tcp", "http", "https", "ssh") and parts.hostname:
        return f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return "127.0.0.1"


def _holds_port(container: Container, port: int) -> bool:
    """Whether ``container`` (the one a replace removes) is what listens on ``port``."""
    config = container.attrs.get("HostConfig") or {}
    if config.get("NetworkMode") == "host":
        env = (container.attrs.get("Config") or {}).get("Env") or []
        return f"EPR_ADDRESS=0.0.0.0:{port}" in env
    bindings = config.get("PortBindings") or {}
    return any(str(b.get("HostPort")) == str(port)
               for published in bindings.values() for b in published or [])


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, port)) == 0


def _wait_healthy(container: Container, url: str, timeout: float, reporter: Reporter) -> None:
    """Wait for Docker's health check when the container has one (it runs inside the
    container, so it hears the registry and nothing else), else for ``url``/health."""
    deadline = time.monotonic() + timeout
    reporter.info(f"waiting for {url}/health ...")
    while time.monotonic() < deadline:
        container.reload()
        state = container.attrs.get("State") or {}
        restarts = container.attrs.get("RestartCount", 0)
        if container.status in ("exited", "dead") or state.get("Restarting") or restarts:
            logs = container.logs(tail=20).decode(errors="replace")
            what = f"keeps restarting ({restarts} restarts so far)" if restarts \
                or state.get("Restarting") else f"stopped ({container.status})"
            raise AirgapError(f"the package registry container {what}",
                              details=logs.splitlines()[-20:])
        health = (state.get("Health") or {}).get("Status")
        if health == "healthy" or (health is None and _answers(url)):
            return
        if health == "unhealthy":
            raise AirgapError("the package registry container is unhealthy: its /health "
                              "check keeps failing", details=["see `docker inspect` and "
                                                              "`docker logs` of the container"])
        time.sleep(0.5)
    raise AirgapError(f"the package registry did not answer {url}/health within "
                      f"{timeout:.0f}s", details=["see `docker logs` of the container"])


def _answers(url: str) -> bool:
    # Liveness only: the certificate is the operator's to check, with their CA. Never
    # through a proxy: the engine's host is reached directly.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        response = httpx.get(f"{url}/health", verify=context, timeout=2, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200
