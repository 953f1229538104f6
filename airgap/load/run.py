"""``airgap load``: the isolated side. Verify the bundle, then do what was asked.

In order: verify (unless ``--skip-verify``), load the images into Docker (every one the
bundle holds, or those ``--image`` names), push them to a private registry, run the
package registry, lay out the artifact registry (the agents' binaries and Elastic
Defend's artifacts), write the settings. A bundle that fails verification is refused
before anything is touched.

The one overlap: while the bundle is verified, the first image already streams to the
Docker engine, all but its last chunk (the others follow once the bundle has passed).
A tar cut inside a member is refused whole: Docker's classic store registers nothing
before it has the whole archive, and with the containerd store no image is made (blobs
already received stay as unreferenced content until containerd's garbage collection).
A verified bundle is loaded in the time the engine takes, not that plus the
verification.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from airgap.bundle.description import BundleDescription, read_description
from airgap.bundle.verify import VerifyReport, VerifySettings, verify_bundle
from airgap.errors import BundleError, UsageError, VerificationError, setting
from airgap.load.artifacts import ArtifactsResult, install_artifacts
from airgap.load.defend import DefendInstall, install_defend
from airgap.load.engine import (
    LoadedImage,
    RunningRegistry,
    RunSettings,
    StreamGate,
    connect,
    load_image,
    run_registry,
)
from airgap.load.fleet_settings import (
    ConfigResult,
    ConfigSettings,
    check_urls,
    defend_base_url,
    write_config,
)
from airgap.load.images import load_more, push_each
from airgap.load.push import PushResult, PushTarget
from airgap.load.select import select_images
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
    images: tuple[str, ...] = ()  # which images to load and push; none named: every one
    pin_packages: bool | None = None  # None: when the registry is tailored
    defend_url: str | None = None  # Defend's base_url; None: from artifacts_url


@dataclass(frozen=True)
class LoadResult:
    """What ``airgap load`` did."""

    verification: VerifyReport | None
    loaded: LoadedImage | None = None
    pushed: PushResult | None = None
    running: RunningRegistry | None = None
    artifacts: ArtifactsResult | None = None
    config: ConfigResult | None = None
    more_loaded: tuple[LoadedImage, ...] = ()  # the images loaded after the first
    pushed_more: tuple[PushResult, ...] = ()
    defend: DefendInstall | None = None


class BundleRefused(VerificationError):
    """The bundle failed verification; ``report`` says how."""

    def __init__(self, report: VerifyReport) -> None:
        super().__init__(f"{report.bundle} failed verification: nothing was loaded",
                         details=[f"{p.path}: {p.message}" for p in report.problems[:20]])
        self.report = report


def _check(settings: LoadSettings) -> tuple[str, ...]:
    """Refuse what cannot work before verifying (minutes) and loading; return the
    extra tags as Docker will keep them."""
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
    if settings.registry:
        PushTarget.parse(settings.registry)
    if settings.run:
        settings.run_settings.check()
    return tuple(docker_tag(t) for t in settings.tags)


def load(settings: LoadSettings, reporter: Reporter) -> LoadResult:
    """Verify the bundle, then load, push, run, lay out and configure as asked."""
    tags = _check(settings)
    description, selected = _selected(settings, reporter)
    config_settings = _config_settings(settings, description) if settings.config_dir \
        else None
    engine = connect() if settings.docker or settings.run else None
    report = loaded = None
    first = selected[0]
    if settings.skip_verify:
        reporter.warning(f"{setting('skip_verify')}: the bundle is NOT being checked; "
                         "whatever it holds now is what gets loaded")
        if engine is not None and settings.docker:
            loaded = load_image(engine, settings.bundle, tags, reporter, settings.platform,
                                reference=first)
    elif engine is not None and settings.docker:
        report, loaded = _verify_while_loading(settings, engine, tags, reporter, first)
    else:
        report = _verify(settings, reporter)
    if report is not None:  # what was read before is now verified: read it again
        description = read_description(settings.bundle)
    reference = parse_reference(description.image.reference)
    more_loaded: tuple[LoadedImage, ...] = ()
    if engine is not None and settings.docker:
        more_loaded = load_more(engine, settings.bundle, selected[1:], reporter,
                                settings.platform)

    pushed = running = None
    pushed_more: tuple[PushResult, ...] = ()
    if settings.registry:
        pushed, *rest = _push(settings, selected, reporter)
        pushed_more = tuple(rest)
    if engine is not None and settings.run:
        running = run_registry(engine, str(reference), settings.run_settings, reporter)
    artifacts = defend = None
    if settings.artifacts_dir:
        artifacts = install_artifacts(settings.bundle, settings.artifacts_dir, reporter)
        defend = install_defend(settings.bundle, description, settings.artifacts_dir,
                                reporter)
    config = write_config(config_settings) if config_settings is not None else None
    return LoadResult(report, loaded, pushed, running, artifacts, config, more_loaded,
                      pushed_more, defend)


def _selected(settings: LoadSettings, reporter: Reporter
              ) -> tuple[BundleDescription, list[str]]:
    """bundle.json, and the images to load and push (the first loads beside the
    verification); when bundle.json cannot be read, the verification says why."""
    try:
        description = read_description(settings.bundle)
    except BundleError:
        if settings.skip_verify:
            raise
        _verify(settings, reporter)  # refuses the bundle: its bundle.json is damaged
        raise
    return description, select_images(description, settings.images)


def _config_settings(settings: LoadSettings, description: BundleDescription
                     ) -> ConfigSettings:
    assert settings.config_dir and settings.registry_url and settings.artifacts_url
    given = description.manifest.given.get("registry")
    flavor = given.get("flavor") if isinstance(given, dict) else None
    pin = settings.pin_packages if settings.pin_packages is not None else flavor == "tailored"
    config = ConfigSettings(settings.config_dir, settings.registry_url, settings.artifacts_url,
                            settings.ca_cert, description.manifest.resolved.stack_version,
                            dict(description.manifest.resolved.packages) if pin else None,
                            bool(description.defend), settings.defend_url)
    if config.defend:  # before anything is loaded: the URL must work
        defend_base_url(check_urls(config.registry_url, config.artifacts_url)[1],
                        config.defend_url)
    return config


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
                          reporter: Reporter, reference: str
                          ) -> tuple[VerifyReport, LoadedImage]:
    """Verify the bundle here while a thread streams the image to the engine, holding
    its last chunk until the bundle has passed.

    The verification checks every blob the stream sends against its digest, so the
    stream does not hash the layers again; it leaves the engine a core of its own.
    """
    gate = StreamGate()
    # Refused, interrupted or failed: the stream stops short.
    with SidePool("airgap-docker-load", on_failure=gate.refuse) as side:
        loading = side.submit(load_image, client, settings.bundle, tags, reporter,
                              settings.platform, gate, reference)
        report = _verify(settings, reporter, jobs=max(1, (os.cpu_count() or 2) - 1))
        gate.open()
    return report, loading.result()


def _push(settings: LoadSettings, references: list[str], reporter: Reporter
          ) -> tuple[PushResult, ...]:
    assert settings.registry is not None
    target = PushTarget.parse(settings.registry)
    network = NetworkSettings(ca_certs=(settings.ca_cert,) if settings.ca_cert else (),
                              jobs=settings.jobs, insecure=settings.insecure)
    with make_client(network) as client:
        return push_each(settings.bundle, target, references,
                         Downloader(client, network, reporter), settings.insecure)
