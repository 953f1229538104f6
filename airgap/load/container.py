"""The package registry container: checked before anything is done, started from the local
image only (nothing is ever pulled), and proved to answer where it is said to.

:func:`check_run` refuses what cannot work (a port in use, a name taken, a key the
registry's user cannot read) before the bundle is verified. :func:`run_registry` starts
the container, waits for its health, then asks ``/health`` and ``/search`` from this
host at the URL it reports; a start that fails or is interrupted removes the container
it created, and puts back the one ``--replace`` set aside (removed only once its successor
is healthy), saying so (or what to run to do it by hand).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from airgap.errors import AirgapError, UsageError, note_left, setting
from airgap.reporter import Reporter

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

TLS_DIR = "/etc/airgap/tls"
REGISTRY_UID = 1000  # the distribution image runs as USER 1000


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
        for name, path in (("tls_cert", self.tls_cert), ("tls_key", self.tls_key)):
            if path is not None and not _readable_by_registry(path):
                raise UsageError(f"{setting(name)} {path} cannot be read by uid "
                                 f"{REGISTRY_UID}, the user the registry runs as",
                                 details=[f"chown {REGISTRY_UID} {path} (and keep it 0600 "
                                          "for a key), or make it readable by others"])


@dataclass(frozen=True)
class Replaced:
    """The container ``--replace`` replaced: its name and id, whether it ran, and whether
    it was removed, which happens only once its successor is healthy (else it is left,
    stopped, as ``left_as``)."""

    name: str
    container_id: str
    was_running: bool
    removed: bool = True
    left_as: str | None = None


@dataclass(frozen=True)
class RunningRegistry:
    """A package registry container that answered /health; ``reachable`` when it also
    answered /health and /search at ``url`` from this host; ``replaced``, the container
    of the same name it took the place of."""

    container_id: str
    name: str
    url: str
    reachable: bool = True
    replaced: Replaced | None = None


def _readable_by_registry(path: Path) -> bool:
    info = path.stat()
    return bool(info.st_mode & 0o004) or (info.st_uid == REGISTRY_UID
                                          and bool(info.st_mode & 0o400))


def check_run(client: DockerClient, reference: str, settings: RunSettings, *,
              image_comes: bool) -> None:
    """Everything a start can be refused for, checked now: the options, the image (unless
    ``image_comes``, loaded first), the container name, the port."""
    import docker.errors

    settings.check()
    if not image_comes:
        try:
            client.images.get(reference)
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
    host = engine_host()
    if host == "127.0.0.1" and _listening(host, settings.port) \
            and not (existing is not None and _holds_port(existing, settings.port)):
        raise UsageError(f"port {settings.port} is in use on this machine: the registry "
                         "could not listen there",
                         details=[f"choose another {setting('port')}, or stop what listens "
                                  "on it"])


def _tls_mounts(settings: RunSettings) -> tuple[dict[str, Any], dict[str, str]]:
    if settings.tls_cert is None or settings.tls_key is None:
        return {}, {}
    volumes = {str(settings.tls_cert.resolve()): {"bind": f"{TLS_DIR}/cert.pem", "mode": "ro"},
               str(settings.tls_key.resolve()): {"bind": f"{TLS_DIR}/key.pem", "mode": "ro"}}
    env = {"EPR_TLS_CERT": f"{TLS_DIR}/cert.pem", "EPR_TLS_KEY": f"{TLS_DIR}/key.pem"}
    return volumes, env


def _options(image: Any, settings: RunSettings) -> tuple[dict[str, Any], str]:
    """The container's options, and the scheme the registry serves."""
    volumes, env = _tls_mounts(settings)
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
    return options, scheme


def run_registry(client: DockerClient, reference: str, settings: RunSettings,
                 reporter: Reporter) -> RunningRegistry:
    """Start the package registry from the local image, wait until it is healthy, and
    ask it from this host; a container that does not come up is removed again, and the
    one it replaces (stopped and renamed until then) is put back as it was. Interrupted,
    the same is undone, and the interruption says so (:func:`~airgap.errors.note_left`)."""
    import docker.errors

    check_run(client, reference, settings, image_comes=False)
    image = client.images.get(reference)
    try:
        existing = client.containers.get(settings.name)
    except docker.errors.NotFound:
        existing = None
    options, scheme = _options(image, settings)
    url = f"{scheme}://{engine_host()}:{settings.port}"
    key = f"container {settings.name}"
    aside = _set_aside(existing, settings.name) if existing is not None else None
    container: Container | None = None
    try:
        reporter.task_started(key, f"starting {settings.name} at {url}", None)
        try:
            container = client.containers.create(reference, **options)
        except docker.errors.DockerException as exc:
            raise AirgapError(f"cannot create the package registry container: {exc}") \
                from exc
        try:
            container.start()
        except docker.errors.DockerException as exc:
            raise AirgapError(f"cannot start the package registry: {exc}") from exc
        _wait_healthy(container, url, settings.health_timeout)
    except BaseException as exc:
        if container is None and not isinstance(exc, Exception):
            container = _created_meanwhile(client, settings.name, aside)
        # Undone first: what reports it may itself be interrupted (a reader gone).
        undone = [] if container is None else [_removed(container, settings.name)]
        if aside is not None:
            undone.append(_put_back(aside, settings.name))
        reporter.task_finished(key, "failed")
        if isinstance(exc, AirgapError):
            raise AirgapError(exc.message, details=[*exc.details, *undone]) from exc
        if isinstance(exc, docker.errors.DockerException):  # asked while it started
            raise AirgapError(f"cannot start the package registry: {exc}",
                              details=undone) from exc
        for line in undone:
            note_left(exc, line)
        raise
    replaced = _remove_replaced(aside, settings.name, reporter) if aside is not None \
        else None
    reachable = _answers(url, "/health") and _answers(url, "/search")
    reporter.task_finished(key, "done", "healthy" + ("" if reachable else
                                                     ", but not reachable from this host"))
    if not reachable:
        reporter.warning(f"the package registry is healthy inside its container, but {url} "
                         "does not answer from this host: it is reachable only inside the "
                         "engine's network")
    return RunningRegistry(str(container.id), settings.name, url, reachable, replaced)


def _created_meanwhile(client: DockerClient, name: str, aside: _Aside | None
                       ) -> Container | None:
    """The container an interrupted create made all the same (the engine went on after
    the request was cut short): the name was free, or its holder set aside, before."""
    import docker.errors

    try:
        found = client.containers.get(name)
    except docker.errors.DockerException:
        return None
    return None if aside is not None and found.id == aside.container.id else found


@dataclass(frozen=True)
class _Aside:
    """The container ``--replace`` replaces, stopped under another name until the new one
    is healthy: then removed, else put back as it was."""

    container: Container
    name: str
    was_running: bool


def _set_aside(existing: Container, name: str) -> _Aside:
    """Rename the container in the way and stop it (it may hold the port): nothing is
    removed before its successor answers."""
    import docker.errors

    was_running = existing.status in ("running", "restarting")
    aside = f"{name}-replaced-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
    try:
        existing.rename(aside)
    except docker.errors.DockerException as exc:
        raise AirgapError(f"cannot set the container {name} aside to replace it: {exc}",
                          details=["nothing was changed"]) from exc
    try:
        if was_running:
            existing.stop()
    except BaseException as exc:
        back = _put_back(_Aside(existing, aside, was_running), name)
        if isinstance(exc, docker.errors.DockerException):
            raise AirgapError(f"cannot stop the container {name} to replace it: {exc}",
                              details=[back]) from exc
        note_left(exc, back)
        raise
    return _Aside(existing, aside, was_running)


def _put_back(aside: _Aside, name: str) -> str:
    """Give the replaced container its name back, and start it if it was running; say so,
    or what to run to do it by hand (also when a second interruption stops it here)."""
    import docker.errors

    back = f"the container {name} that was there is back as it was " + (
        "(running again)" if aside.was_running else "(stopped, as it was)")
    renamed = False
    try:
        aside.container.rename(name)
        renamed = True
        if aside.was_running:
            aside.container.start()
    except BaseException as exc:
        steps = ([] if renamed else [f"docker rename {aside.name} {name}"]) + (
            [f"docker start {name}"] if aside.was_running else [])
        why = f" ({exc})" if isinstance(exc, docker.errors.DockerException) else ""
        told = f"the container {name} it replaced could not be put back{why}: it is " \
            f"named {name if renamed else aside.name}; put it back with " \
            f"`{' && '.join(steps)}`" if steps else back
        if not isinstance(exc, docker.errors.DockerException):
            note_left(exc, told)
            raise
        return told
    return back


def _remove_replaced(aside: _Aside, name: str, reporter: Reporter) -> Replaced:
    """The new container is healthy: the one it replaces goes."""
    import docker.errors

    replaced = Replaced(name, str(aside.container.id), aside.was_running)
    try:
        aside.container.remove(force=True)
    except docker.errors.DockerException as exc:
        reporter.warning(f"the replaced container {aside.name} could not be removed ({exc}): "
                         f"remove it with `docker rm -f {aside.name}`")
        return dataclasses.replace(replaced, removed=False, left_as=aside.name)
    return replaced


def _removed(container: Container, name: str) -> str:
    """Remove the container a failed start created; say so."""
    import docker.errors

    try:
        container.remove(force=True)
    except docker.errors.DockerException as exc:
        return f"the container {name} could not be removed ({exc}): remove it with " \
               f"`docker rm -f {name}`"
    return f"the container {name} it created was removed"


def engine_host() -> str:
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


def _wait_healthy(container: Container, url: str, timeout: float) -> None:
    """Wait for Docker's health check when the container has one (it runs inside the
    container, so it hears the registry and nothing else), else for ``url``/health."""
    deadline = time.monotonic() + timeout
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
        if health == "healthy" or (health is None and _answers(url, "/health")):
            return
        if health == "unhealthy":
            raise AirgapError("the package registry container is unhealthy: its /health "
                              "check keeps failing", details=["see `docker inspect` and "
                                                              "`docker logs` of the container"])
        time.sleep(0.5)
    raise AirgapError(f"the package registry did not answer {url}/health within "
                      f"{timeout:.0f}s", details=["see `docker logs` of the container"])


def _answers(url: str, path: str) -> bool:
    # Liveness only: the certificate is the operator's to check, with their CA. Never
    # through a proxy: the engine's host is reached directly.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        response = httpx.get(f"{url}{path}", verify=context, timeout=2, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200
