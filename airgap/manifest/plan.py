"""The plan: every item a fetch will get for a manifest, and why each one is there.

Planning needs no network. It expands the manifest with Elastic's layout
(:mod:`airgap.elastic`) into an image, a list of artifact URLs and a list of packages to
resolve, and leaves out combinations Elastic does not publish, with a note for each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airgap import elastic, package_registry
from airgap.bundle.layout import DOWNLOADS, SECURITY
from airgap.errors import ManifestError
from airgap.manifest.model import ExtraImage, Manifest
from airgap.oci.reference import ImageReference, parse_reference


@dataclass(frozen=True)
class ImageItem:
    """The package registry image: what to pull, from where, for which platforms."""

    reference: ImageReference
    registry_url: str
    platforms: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "reference": str(self.reference),
            "registry_url": self.registry_url,
            "repository": self.reference.repository,
            "tag": self.reference.tag,
            "platforms": list(self.platforms),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ArtifactItem:
    """One binary on the artifact server, with its ``.sha512`` and ``.asc`` beside it."""

    product: str
    os: str
    arch: str
    format: str
    fips: bool
    path: str  # below the downloads base: beats/elastic-agent/<file>
    url: str
    reasons: tuple[str, ...]

    @property
    def filename(self) -> str:
        """Elastic's file name."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def bundle_path(self) -> str:
        """Where the file lives in a bundle: ``downloads/<dir>/<file>``."""
        return f"{DOWNLOADS}/{self.path}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "product": self.product, "os": self.os, "arch": self.arch, "format": self.format,
            "fips": self.fips, "path": self.bundle_path, "url": self.url,
            "sha512_url": self.url + ".sha512", "asc_url": self.url + ".asc",
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class PackageItem:
    """An integration package to resolve on the EPR source and download with its ``.sig``:
    the newest compatible version, every one (``all_versions``), or the ``version``
    pinned."""

    name: str
    search_url: str
    reason: str
    version: str | None = None
    all_versions: bool = False

    @property
    def label(self) -> str:
        """``nginx``, ``nginx@2.0.0`` or ``nginx (every compatible version)``."""
        if self.version:
            return f"{self.name}@{self.version}"
        return f"{self.name} (every compatible version)" if self.all_versions else self.name

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"name": self.name, "version": self.version, "all_versions": self.all_versions,
                "search_url": self.search_url, "reason": self.reason}


@dataclass(frozen=True)
class TailoredItem:
    """A tailored registry: ``base`` (the server image, which :class:`ImageItem` pulls)
    plus one layer holding the packages, named ``reference``."""

    reference: ImageReference
    base: ImageReference
    package_path: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"reference": str(self.reference), "base": str(self.base),
                "package_path": self.package_path}


@dataclass(frozen=True)
class DefendItem:
    """Elastic Defend's artifact manifest for one Endpoint version; the fetch reads the
    artifacts it lists from the manifest itself."""

    endpoint_version: str
    path: str  # below the server's root: downloads/endpoint/manifest/artifacts-<v>.zip
    url: str
    base_url: str  # the server's root, which each artifact's relative_url is joined to
    reason: str

    @property
    def bundle_path(self) -> str:
        """Where the manifest lives in a bundle: ``security/<path>``."""
        return f"{SECURITY}/{self.path}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"endpoint_version": self.endpoint_version, "path": self.bundle_path,
                "url": self.url, "reason": self.reason}


@dataclass(frozen=True)
class Plan:
    """Everything a fetch of ``manifest`` gets."""

    manifest: Manifest
    image: ImageItem
    artifacts: tuple[ArtifactItem, ...]
    packages: tuple[PackageItem, ...]
    notes: tuple[str, ...]
    tailored: TailoredItem | None = None
    images: tuple[ImageItem, ...] = ()  # besides the registry's
    defend: tuple[DefendItem, ...] = ()

    def summary(self) -> str:
        """What a fetch of this plan gets, in one line."""
        image = f"{self.tailored.reference} (tailored on {self.image.reference})" \
            if self.tailored else str(self.image.reference)
        return (f"{image} for {', '.join(self.image.platforms)}, "
                f"{len(self.artifacts)} binaries with their .sha512 and .asc, "
                f"{len(self.packages)} packages with their .sig")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, as ``airgap plan --json`` prints it."""
        return {
            "manifest": self.manifest.source,
            "stack_version": self.manifest.stack_version,
            "image": self.image.to_dict(),
            **({"tailored": self.tailored.to_dict()} if self.tailored else {}),
            "images": [i.to_dict() for i in self.images],
            "artifacts": [a.to_dict() for a in self.artifacts],
            "packages": [p.to_dict() for p in self.packages],
            "defend": [d.to_dict() for d in self.defend],
            "notes": list(self.notes),
        }


def make_plan(manifest: Manifest) -> Plan:
    """Expand ``manifest`` into a :class:`Plan`."""
    notes: list[str] = []
    image = _image(manifest)
    tailored = _tailored(manifest)
    return Plan(
        manifest=manifest,
        image=image,
        artifacts=tuple(_artifacts(manifest, notes)),
        packages=tuple(_packages(manifest)),
        notes=tuple(notes),
        images=_extra_images(manifest, image, tailored),
        defend=tuple(_defend(manifest)),
        tailored=tailored,
    )


def _image(manifest: Manifest) -> ImageItem:
    spec = manifest.registry
    if spec.tailored:
        why = "registry.base" if spec.base else \
            f"Elastic's package registry server {package_registry.PACKAGE_REGISTRY_VERSION}"
        return ImageItem(reference=parse_reference(spec.base_image),
                         registry_url=manifest.sources.registry,
                         platforms=manifest.platforms.image_platforms,
                         reason=f"{why}, the base of the tailored registry")
    reference = parse_reference(spec.image, default_tag=manifest.registry_tag)
    if spec.tag:
        reason = "registry.tag"
    else:
        variant = f", variant {spec.variant}" if spec.variant else ""
        reason = f"package registry for Kibana {manifest.stack_version} ({spec.flavor}{variant})"
    return ImageItem(
        reference=ImageReference(reference.host, reference.repository, manifest.registry_tag),
        registry_url=manifest.sources.registry,
        platforms=manifest.platforms.image_platforms,
        reason=reason,
    )


def product_reasons(manifest: Manifest) -> dict[str, list[str]]:
    """Each product to fetch, in order, with why it is wanted."""
    wanted: dict[str, list[str]] = {}
    if manifest.artifacts.products is not None:
        for name in manifest.artifacts.products:
            wanted[name] = ["artifacts.products"]
        return wanted
    wanted[elastic.BASE_PRODUCT] = ["every Fleet setup"]
    for integration in manifest.integrations:
        products, listed = elastic.products_for_integration(integration)
        why = f"integration {integration}" if listed else \
            f"integration {integration} (log and metrics inputs)"
        for product in products:
            wanted.setdefault(product, []).append(why)
    return wanted


def _combinations(manifest: Manifest, notes: list[str]) -> Iterator[tuple[str, str, str]]:
    platforms = manifest.platforms
    restricted: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for fmt in platforms.formats:
        needed = elastic.FORMAT_OS.get(fmt)
        others = tuple(o for o in platforms.os if needed is not None and o != needed)
        if needed is not None and others:
            restricted.setdefault((needed, others), []).append(fmt)
    for (needed, others), formats in restricted.items():
        notes.append(f"{' and '.join(formats)} packages exist for {needed} only: not "
                     f"requested for {', '.join(others)}")
    for os in platforms.os:
        arches = list(platforms.arch)
        if os == "darwin" and manifest.artifacts.darwin_universal:
            arches.append(elastic.UNIVERSAL)
        for arch in arches:
            for fmt in platforms.formats:
                if elastic.FORMAT_OS.get(fmt, os) == os and \
                        (arch != elastic.UNIVERSAL or fmt == "archive"):
                    yield os, arch, fmt


def _artifacts(manifest: Manifest, notes: list[str]) -> Iterator[ArtifactItem]:
    version, fips = manifest.stack_version, manifest.artifacts.fips
    combinations = list(_combinations(manifest, notes))
    left_out: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for name, reasons in product_reasons(manifest).items():
        product = elastic.PRODUCTS[name]
        missing: dict[str, list[str]] = {}
        for os, arch, fmt in combinations:
            why_not = elastic.unavailable_reason(product, os, arch, fmt, fips, version)
            if why_not is not None:
                if arch != elastic.UNIVERSAL:  # asked for every product: no news
                    missing.setdefault(why_not, []).append(f"{os}/{arch} {fmt}")
                continue
            filename = elastic.artifact_filename(product, version, os, arch, fmt, fips)
            path = elastic.artifact_path(product, filename)
            yield ArtifactItem(name, os, arch, fmt, fips, path,
                               manifest.sources.artifacts + path, tuple(reasons))
        for why_not, missed in missing.items():
            left_out.setdefault((why_not, tuple(missed)), []).append(name)
    for (why_not, left), names in left_out.items():
        notes.append(f"{', '.join(names)}: {why_not}; left out {', '.join(left)}")


def _extra_images(manifest: Manifest, registry: ImageItem,
                  tailored: TailoredItem | None) -> tuple[ImageItem, ...]:
    """The images besides the registry's, each once, from where its host's images come."""
    items: list[ImageItem] = []
    seen = {str(registry.reference): "registry.base" if tailored else "registry"}
    if tailored is not None:
        seen[str(tailored.reference)] = "the tailored registry"
    for number, wanted in enumerate(manifest.images):
        item = _extra_image(manifest, wanted, number)
        if str(item.reference) in seen:
            raise ManifestError(f"{manifest.where(f'images[{number}]')}: {item.reference} is "
                                f"already in the bundle (as {seen[str(item.reference)]})")
        seen[str(item.reference)] = f"images[{number}]"
        items.append(item)
    return tuple(items)


def _extra_image(manifest: Manifest, wanted: ExtraImage, number: int) -> ImageItem:
    reference = parse_reference(wanted.name, default_tag=wanted.tag or manifest.stack_version)
    source = manifest.sources.registry if reference.host == elastic.ELASTIC_REGISTRY_HOST \
        else f"https://{reference.host}"
    what = f"images[{number}]" + (f" ({wanted.known})" if wanted.known else "")
    tag = f"the stack version {manifest.stack_version}" if wanted.tag is None else "its tag"
    return ImageItem(reference=reference, registry_url=source,
                     platforms=wanted.platforms or manifest.platforms.image_platforms,
                     reason=f"{what}, {tag}")


def _defend(manifest: Manifest) -> Iterator[DefendItem]:
    chosen = manifest.security.endpoint_versions is not None
    base = manifest.sources.security
    for version in manifest.endpoint_versions:
        path = elastic.defend_manifest_path(version)
        yield DefendItem(version, path, base + path, base,
                         "security.endpoint_artifacts" if chosen else
                         f"integration {elastic.DEFEND_INTEGRATION} (Elastic Defend's "
                         "protection updates)")


# -- packages, and the tailored registry they make ---------------------------------------


def _tailored(manifest: Manifest) -> TailoredItem | None:
    spec = manifest.registry
    if not spec.tailored:
        return None
    name = parse_reference(spec.image)
    return TailoredItem(ImageReference(name.host, name.repository, manifest.registry_tag),
                        parse_reference(spec.base_image), package_registry.PACKAGE_PATH)


def package_reasons(manifest: Manifest) -> dict[str, list[str]]:
    """Each package to fetch, in order, with why it is wanted: the integrations; for a
    tailored registry also what Fleet installs at setup and ``registry.packages``."""
    wanted: dict[str, list[str]] = {}
    for name in manifest.integrations:
        wanted.setdefault(name, []).append(f"integration {name}")
    if manifest.registry.tailored:
        for name in package_registry.FLEET_SETUP_PACKAGES:
            wanted.setdefault(name, []).append("Fleet installs it at setup")
        for extra in manifest.registry.packages:
            wanted.setdefault(extra.name, []).append(f"registry.packages ({extra})")
    return wanted


def _packages(manifest: Manifest) -> Iterator[PackageItem]:
    if not manifest.packages:
        return
    pins = {e.name: e.version for e in manifest.registry.packages if e.version}
    every = manifest.registry.all_versions
    for name, reasons in package_reasons(manifest).items():
        version = pins.get(name)
        search = package_registry.epr_search_path(
            name, manifest.stack_version, all_versions=every or version is not None,
            prerelease=version is not None and "-" in version)
        yield PackageItem(name=name, search_url=manifest.sources.epr + search,
                          reason="; ".join(reasons), version=version,
                          all_versions=every and version is None)
