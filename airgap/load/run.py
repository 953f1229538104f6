"""``airgap load``: the isolated side. Verify the bundle, then do what was asked.

First everything that can be checked is: the options, the platform in the bundle, the
port and the container name, the certificate's key, the registry and its credentials,
so that a mistake is found in seconds, not after the verification. Then in order:
verify (unless ``--skip-verify``), load the image into Docker, push it to a private
registry, run the package registry, lay out the artifact registry, write the settings.
A bundle that fails verification is refused before anything is touched.

The one overlap: while the bundle is verified, the image already streams to the Docker
engine, all but its last chunk. A tar cut inside a member is refused whole: Docker's
classic store registers nothing before it has the whole archive, and with the
containerd store no image is made (blobs already received stay as unreferenced content
until containerd's garbage collection). A verified bundle is loaded in the time the
engine takes, not that plus the verification.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airgap.bundle.delta import shown
from airgap.bundle.description import read_description
from airgap.bundle.lock import refuse_while_written
from airgap.bundle.verify import VerifyReport, VerifySettings, verify_bundle
from airgap.errors import BundleError, UsageError, VerificationError, setting
from airgap.load.artifacts import ArtifactsResult, install_artifacts
from airgap.load.container import RunningRegistry, RunSettings, check_run, run_registry
from airgap.load.engine import LoadedImage, StreamGate, connect, load_image, select
from airgap.load.fleet_settings import ConfigResult, ConfigSettings, check_urls, write_config
from airgap.load.push import PushResult, PushTarget, connect_registry, push_image
from airgap.net.download import Downloader
from airgap.net.transport import NetworkSettings, make_client
from airgap.oci.reference import docker_tag, parse_reference
from airgap.reporter import Reporter
from airgap.threads import SidePool

if TYPE_CHECKING:
    from docker import DockerClient


@dataclass(frozen=True)
class LoadSettings:
    """Everything ``airgap load`` was asked to do."""

    bundle: Path
    skip_verify: bool = False
    trust_keys: tuple[Path, ...] = ()
    docker: bool = False
    platform: str | None = None
    tags: tuple[str, ...] = ()
    registry: str | None = None
    insecure: bool = False
    ca_cert: Path | None = None
    run: bool = False
    run_settings: RunSettings = field(default_factory=RunSettings)
    artifacts_dir: Path | None = None
    config_dir: Path | None = None
    registry_url: str | None = None
    artifacts_url: str | None = None
    jobs: int = 8


@dataclass(frozen=True)
class LoadResult:
    """What ``airgap load`` did."""

    verification: VerifyReport | None
    loaded: LoadedImage | None = None
    pushed: PushResult | None = None
    running: RunningRegistry | None = None
    artifacts: ArtifactsResult | None = None
    config: ConfigResult | None = None

    def warnings(self) -> list[str]:
        """What the operator should know: the verification's warnings, and more."""
        found = list(self.verification.warnings) if self.verification is not None else \
            [f"{setting('skip_verify')}: the bundle was not verified"]
        if self.running is not None and not self.running.reachable:
            found.append(f"{self.running.url} is reachable only inside the engine's network")
        return found

    def to_dict(self) -> dict[str, Any]:
        """What was done, for ``--json``."""
        done: dict[str, Any] = {"verified": self.verification is not None}
        if self.verification is not None:
            done["verification"] = self.verification.summary()
        if self.loaded is not None:
            done["docker"] = {"reference": self.loaded.reference, "image_id": self.loaded.image_id,
                              "platform": self.loaded.platform, "tags": list(self.loaded.tags)}
        if self.pushed is not None:
            done["pushed"] = {"reference": str(self.pushed.reference),
                              "digest": self.pushed.digest, "uploaded": self.pushed.uploaded,
                              "skipped": self.pushed.skipped}
        if self.running is not None:
            done["running"] = {"container": self.running.name, "url": self.running.url,
                               "reachable": self.running.reachable}
        if self.artifacts is not None:
            a = self.artifacts
            done["artifacts"] = {"directory": str(a.directory), "linked": a.linked,
                                 "copied": a.copied, "unchanged": a.unchanged,
                                 "replaced": list(a.replaced)}
        if self.config is not None:
            done["settings"] = {"directory": str(self.config.directory),
                                "files": list(self.config.files)}
        return done


class BundleRefused(VerificationError):
    """The bundle failed verification; ``report`` says how."""

    def __init__(self, report: VerifyReport) -> None:
        super().__init__(f"{report.bundle} failed verification: nothing was loaded",
                         details=[f"{p.path}: {p.message}" for p in report.problems[:20]])
        self.report = report


def _check(settings: LoadSettings) -> tuple[str, ...]:
    """Refuse options that do not go together; return the extra tags as Docker keeps them."""
    if not (settings.docker or settings.registry or settings.run or settings.artifacts_dir
            or settings.config_dir):
        raise UsageError("nothing to do: give " + ", ".join(setting(s) for s in (
            "docker", "registry", "run", "artifacts_dir")) + f" or {setting('config_dir')}")
    if settings.config_dir:
        if not (settings.registry_url and settings.artifacts_url):
            raise UsageError(f"{setting('config_dir')} needs {setting('registry_url')} and "
                             f"{setting('artifacts_url')}: the URLs Kibana and the agents "
                             "will use")
        check_urls(settings.registry_url, settings.artifacts_url)
    if settings.run:
        settings.run_settings.check()
    return tuple(docker_tag(t) for t in settings.tags)


def load(settings: LoadSettings, reporter: Reporter) -> LoadResult:
    """Check everything, verify the bundle, then load, push, run, lay out and configure
    as asked."""
    tags = _check(settings)
    target = PushTarget.parse(settings.registry) if settings.registry else None
    refuse_while_written(settings.bundle)
    _refuse_delta(settings.bundle)
    reference = parse_reference(_image_reference(settings.bundle))
    engine = connect() if settings.docker or settings.run else None
    if engine is not None and settings.docker:
        select(engine, settings.bundle, settings.platform)
    if engine is not None and settings.run:
        check_run(engine, str(reference), settings.run_settings, image_comes=settings.docker)
    network = NetworkSettings(ca_certs=(settings.ca_cert,) if settings.ca_cert else (),
                              jobs=settings.jobs, insecure=settings.insecure)
    with make_client(network) if target is not None else contextlib.nullcontext() as http:
        registry = connect_registry(target, reference.repository,
                                    Downloader(http, network, reporter), settings.insecure) \
            if target is not None and http is not None else None
        report = loaded = None
        if settings.skip_verify:
            reporter.warning(f"{setting('skip_verify')}: the bundle is NOT being checked; "
                             "whatever it holds now is what gets loaded")
            if engine is not None and settings.docker:
                loaded = load_image(engine, settings.bundle, tags, reporter, settings.platform)
        elif engine is not None and settings.docker:
            report, loaded = _verify_while_loading(settings, engine, tags, reporter)
        else:
            report = _verify(settings, reporter)
        reference = parse_reference(_image_reference(settings.bundle))
        pushed = push_image(settings.bundle, registry, reference.tag) \
            if registry is not None else None
    running = run_registry(engine, str(reference), settings.run_settings, reporter) \
        if engine is not None and settings.run else None
    artifacts = install_artifacts(settings.bundle, settings.artifacts_dir, reporter) \
        if settings.artifacts_dir else None
    config = None
    if settings.config_dir and settings.registry_url and settings.artifacts_url:
        config = write_config(ConfigSettings(settings.config_dir, settings.registry_url,
                                             settings.artifacts_url, settings.ca_cert))
    return LoadResult(report, loaded, pushed, running, artifacts, config)


def _refuse_delta(bundle: Path) -> None:
    """A delta lacks what its base holds: it is merged into a bundle, never loaded."""
    try:
        delta = read_description(bundle).delta
    except BundleError:
        return  # verification says what is wrong with it
    if delta is not None:
        raise UsageError(f"{bundle} is a delta of the bundle {shown(delta.base)}: it holds "
                         "only what that bundle does not",
                         details=[f"merge it first: airgap merge BASE {bundle} -o NEW, "
                                  "then load NEW"])


def _verify(settings: LoadSettings, reporter: Reporter, jobs: int | None = None
            ) -> VerifyReport:
    verify = VerifySettings(settings.bundle, settings.trust_keys)
    if jobs is not None:
        verify = dataclasses.replace(verify, jobs=jobs)
    report = verify_bundle(verify, reporter)
    if not report.ok:
        raise BundleRefused(report)
    for warning in report.warnings:
        reporter.warning(warning)
    return report


def _verify_while_loading(settings: LoadSettings, client: DockerClient, tags: tuple[str, ...],
                          reporter: Reporter) -> tuple[VerifyReport, LoadedImage]:
    """Verify the bundle here while a thread streams the image to the engine, holding
    its last chunk until the bundle has passed.

    The verification checks every blob the stream sends against its digest, so the
    stream does not hash the layers again; it leaves the engine a core of its own.
    """
    gate = StreamGate()
    # Refused, interrupted or failed: the stream stops short.
    with SidePool("airgap-docker-load", on_failure=gate.refuse) as side:
        loading = side.submit(load_image, client, settings.bundle, tags, reporter,
                              settings.platform, gate)
        report = _verify(settings, reporter, jobs=max(1, (os.cpu_count() or 2) - 1))
        gate.open()
    return report, loading.result()


def _image_reference(root: Path) -> str:
    """The image's original reference, from bundle.json."""
    return read_description(root).image.reference
