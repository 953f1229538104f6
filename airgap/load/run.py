"""``airgap load``: the isolated side. Verify the bundle, then do what was asked.

First everything that can be checked is: the options, the images and the platform in
the bundle, the port and the container name, the certificate's key, the registry and
its credentials, so that a mistake is found in seconds, not after the verification.
Then in order: verify (unless ``--skip-verify``), load the images into Docker (every one
the bundle holds, or those ``--image`` names), push them to a private registry, run the
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

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airgap.bundle import layout
from airgap.bundle.delta import shown
from airgap.bundle.description import BundleDescription, read_description
from airgap.bundle.lock import refuse_while_written
from airgap.bundle.verify import BundleRefused, VerifyReport, VerifySettings, verify_bundle
from airgap.errors import BundleError, UsageError, setting
from airgap.load.artifacts import ArtifactsResult, install_artifacts
from airgap.load.container import RunningRegistry, RunSettings, check_run, run_registry
from airgap.load.defend import DefendInstall, defend_files, install_defend
from airgap.load.destinations import check_folder
from airgap.load.engine import LoadedImage, StreamGate, connect, load_image, select
from airgap.load.fleet_settings import (
    ConfigResult,
    ConfigSettings,
    check_urls,
    defend_base_url,
    write_config,
)
from airgap.load.images import connect_each, load_more, push_each
from airgap.load.known import laid_out_files, write_index
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
    trust_signers: tuple[Path, ...] = ()
    docker: bool = False
    platform: str | None = None
    tags: tuple[str, ...] = ()
    registry: str | None = None
    insecure: bool = False
    ca_cert: Path | None = None
    run: bool = False
    run_settings: RunSettings = field(default_factory=RunSettings)
    artifacts_dir: Path | None = None
    hard_link: bool = False
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
            done["docker"] = _loaded(self.loaded)
        if self.more_loaded:  # the bundle's other images, after the package registry's
            done["more_docker"] = [_loaded(loaded) for loaded in self.more_loaded]
        if self.pushed is not None:
            done["pushed"] = _pushed(self.pushed)
        if self.pushed_more:
            done["pushed_more"] = [_pushed(pushed) for pushed in self.pushed_more]
        if self.running is not None:
            replaced = self.running.replaced
            done["running"] = {"container": self.running.name, "url": self.running.url,
                               "reachable": self.running.reachable,
                               "container_id": self.running.container_id,
                               "replaced": None if replaced is None else {
                                   "container": replaced.name, "id": replaced.container_id,
                                   "was_running": replaced.was_running,
                                   "removed": replaced.removed, "left_as": replaced.left_as}}
        if self.artifacts is not None:
            a = self.artifacts
            done["artifacts"] = {"directory": str(a.directory), "linked": a.linked,
                                 "copied": a.copied, "cloned": a.cloned,
                                 "unchanged": a.unchanged,
                                 "replaced": list(a.replaced)}
        if self.defend is not None:
            d = self.defend
            done["defend"] = {"directory": str(d.directory), "added": d.added,
                              "unchanged": d.unchanged, "manifests": list(d.manifests)}
        if self.config is not None:
            done["settings"] = {"directory": str(self.config.directory),
                                "files": list(self.config.files)}
        return done


def _loaded(loaded: LoadedImage) -> dict[str, Any]:
    return {"reference": loaded.reference, "image_id": loaded.image_id,
            "platform": loaded.platform, "tags": list(loaded.tags)}


def _pushed(pushed: PushResult) -> dict[str, Any]:
    return {"reference": str(pushed.reference), "digest": pushed.digest,
            "uploaded": pushed.uploaded, "skipped": pushed.skipped}


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
    description, selected = _selected(settings, reporter)
    _refuse_writes_into_bundle(settings, description)
    for name in ("artifacts_dir", "config_dir"):
        if getattr(settings, name) is not None:
            check_folder(getattr(settings, name), name)
    config_settings = _config_settings(settings, description) if settings.config_dir \
        else None
    reference = parse_reference(description.image.reference)
    first = selected[0]
    engine = connect() if settings.docker or settings.run else None
    if engine is not None and settings.docker:
        for image in selected:
            select(engine, settings.bundle, settings.platform, image)
    if engine is not None and settings.run:
        check_run(engine, str(reference), settings.run_settings, image_comes=settings.docker)
    network = NetworkSettings(ca_certs=(settings.ca_cert,) if settings.ca_cert else (),
                              jobs=settings.jobs, insecure=settings.insecure)
    with make_client(network) if target is not None else contextlib.nullcontext() as http:
        registries = connect_each(target, selected, Downloader(http, network, reporter),
                                  settings.insecure) \
            if target is not None and http is not None else []
        report = loaded = None
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
        pushed, *pushed_more = push_each(settings.bundle, registries, selected) \
            if registries else (None,)
    running = run_registry(engine, str(reference), settings.run_settings, reporter) \
        if engine is not None and settings.run else None
    artifacts = defend = None
    if settings.artifacts_dir:
        defend_files(description)  # a Defend file misplaced: refused before any copy
        artifacts = install_artifacts(settings.bundle, settings.artifacts_dir, reporter,
                                      hard_link=settings.hard_link)
        defend = install_defend(settings.bundle, description, settings.artifacts_dir,
                                reporter, hard_link=settings.hard_link)
        if not settings.skip_verify:  # what was laid out is verified: serve needs no hash
            write_index(settings.artifacts_dir, laid_out_files(description))
    config = write_config(config_settings) if config_settings is not None else None
    return LoadResult(report, loaded, pushed, running, artifacts, config, more_loaded,
                      tuple(pushed_more), defend)


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
    # A tailored registry holds exactly the bundle's packages: Kibana is pinned to them.
    tailored = description.image.tailored is not None
    pin = settings.pin_packages if settings.pin_packages is not None else tailored
    config = ConfigSettings(settings.config_dir, settings.registry_url, settings.artifacts_url,
                            settings.ca_cert, description.manifest.resolved.stack_version,
                            dict(description.manifest.resolved.packages) if pin else None,
                            bool(description.defend), settings.defend_url)
    if config.defend:  # before anything is loaded: the URL must work
        defend_base_url(check_urls(config.registry_url, config.artifacts_url)[1],
                        config.defend_url)
    return config


def _refuse_writes_into_bundle(settings: LoadSettings, description: BundleDescription
                               ) -> None:
    """Refuse an ``artifacts_dir`` or ``config_dir`` whose files would land in the bundle:
    the folder inside it, the bundle lying where the folder's files go, or a link on the
    way leading into it. Written there, they would change the bundle they come from."""
    root = settings.bundle.resolve()
    below = f"{layout.SECURITY}/{layout.DOWNLOADS}/"
    folders: dict[str, set[str]] = {}
    if settings.artifacts_dir is not None:
        paths = [i.path.removeprefix(below) if i.path.startswith(below)
                 else i.path.removeprefix(f"{layout.DOWNLOADS}/") for i in description.items
                 if i.path.startswith((below, f"{layout.DOWNLOADS}/"))]
        folders["artifacts_dir"] = {"", *(p.rpartition("/")[0] for p in paths)}
    if settings.config_dir is not None:
        folders["config_dir"] = {"", "elastic-agent-upgrade-keys"}
    for name, relatives in folders.items():
        destination: Path = getattr(settings, name)
        for relative in sorted(relatives):
            target = (destination / relative).resolve()  # where its files land, links followed
            if target == root or root in target.parents:
                raise UsageError(
                    f"{setting(name)} {destination} would write into the bundle "
                    f"{settings.bundle} ({target} is in it)",
                    details=[f"give {setting(name)} a folder outside the bundle: what is "
                             "written there would change the bundle it comes from"])


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
    verify = VerifySettings(settings.bundle, settings.trust_keys, settings.trust_signers,
                            scope=_leaving(settings))
    if jobs is not None:
        verify = dataclasses.replace(verify, jobs=jobs)
    report = verify_bundle(verify, reporter)
    if not report.ok:
        raise BundleRefused(report)
    for warning in report.warnings:
        reporter.warning(warning)
    return report


def _leaving(settings: LoadSettings) -> frozenset[str]:
    """The bundle's folders whose files this load takes out of it: what must be vouched
    for from outside (the image for Docker and a registry, downloads/ and Defend's
    security/ for the agents, bundle.json for the settings written from what it says)."""
    leaving = set()
    if settings.docker or settings.registry or settings.run:
        leaving.add(layout.IMAGES)
    if settings.artifacts_dir:
        leaving.update((layout.DOWNLOADS, layout.SECURITY))  # Defend's beside the binaries
    if settings.config_dir:
        leaving.add(layout.DESCRIPTION)
    return frozenset(leaving)


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


