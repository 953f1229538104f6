"""The manifest: what a bundle must hold, read strictly from YAML into frozen dataclasses.

The format (``apiVersion: airgap/v1``) is a public contract; see docs/manifest.md.
Validation collects every problem before failing, and each message names the file,
the line and the key path (``platforms.arch[1]: 'sparc' is not one of x86_64, arm64``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airgap import elastic
from airgap.errors import ManifestError
from airgap.manifest.strict import Checker, describe, key_lines
from airgap.oci.reference import is_image_name, is_tag

API_VERSION = "airgap/v1"
KIND = "Bundle"

_VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)\Z")
_INTEGRATION_RE = re.compile(r"^[a-z0-9][a-z0-9_]*\Z")
# name or name@version, the version a package version (pre-releases allowed) as the
# registry writes them.
_EXTRA_PACKAGE_RE = re.compile(
    r"^([a-z0-9][a-z0-9_]*)(?:@((?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z.-]+)?))?\Z")
_TAILORED_KEYS = ("base", "packages", "all_versions")

_TOP_KEYS = ("apiVersion", "kind", "stack", "platforms", "registry", "integrations",
             "artifacts", "packages", "sources", "trust")


@dataclass(frozen=True)
class Platforms:
    """The operating systems, architectures and package formats to fetch for."""

    os: tuple[str, ...] = ("linux",)
    arch: tuple[str, ...] = ("x86_64",)
    formats: tuple[str, ...] = ("archive",)

    @property
    def image_platforms(self) -> tuple[str, ...]:
        """The registry image's OCI platforms, e.g. ``("linux/amd64", "linux/arm64")``."""
        return tuple(elastic.IMAGE_PLATFORMS[a] for a in self.arch)


@dataclass(frozen=True)
class ExtraPackage:
    """A package a tailored registry holds besides the integrations: ``name`` or
    ``name@version``."""

    name: str
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.version}" if self.version else self.name


@dataclass(frozen=True)
class RegistrySpec:
    """Which package registry image to fetch, or, for ``tailored``, which server image
    to compose with which packages."""

    image: str = elastic.DEFAULT_REGISTRY_IMAGE
    flavor: str = "full"
    variant: str | None = None
    tag: str | None = None
    # tailored only: the server image (default: Elastic's, at the pinned version), the
    # packages besides the integrations and Fleet's own, every compatible version or not.
    base: str | None = None
    packages: tuple[ExtraPackage, ...] = ()
    all_versions: bool = False

    @property
    def tailored(self) -> bool:
        """Whether airgap composes the image rather than pulling it whole."""
        return self.flavor == "tailored"

    @property
    def base_image(self) -> str:
        """The server image a tailored registry is built on, with its tag."""
        return self.base or elastic.base_image(self.variant)


@dataclass(frozen=True)
class ArtifactsSpec:
    """Which binaries to fetch: ``products`` is None for ``auto``."""

    products: tuple[str, ...] | None = None
    fips: bool = False


@dataclass(frozen=True)
class Sources:
    """Where to fetch from; the defaults are Elastic's public endpoints."""

    registry: str = elastic.DEFAULT_REGISTRY_URL
    artifacts: str = elastic.DEFAULT_ARTIFACTS_URL
    epr: str = elastic.DEFAULT_EPR_URL
    ca_cert: Path | None = None


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``document`` is the YAML mapping exactly as given."""

    stack_version: str
    platforms: Platforms = Platforms()
    registry: RegistrySpec = RegistrySpec()
    integrations: tuple[str, ...] = ()
    artifacts: ArtifactsSpec = ArtifactsSpec()
    packages: bool = True
    sources: Sources = Sources()
    trust_keys: tuple[Path, ...] = ()
    source: str = "<manifest>"
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def registry_tag(self) -> str:
        """The image tag the registry settings resolve to."""
        r = self.registry
        return elastic.registry_tag(self.stack_version, r.flavor, r.variant, r.tag)


def load_manifest(path: Path) -> Manifest:
    """Read and validate the manifest at ``path``; relative paths in it resolve against
    its folder. Raises :class:`ManifestError` listing every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc}") from None
    return parse_manifest(text, source=str(path), base_dir=path.resolve().parent)


def parse_manifest(text: str, *, source: str, base_dir: Path) -> Manifest:
    """Validate manifest ``text``; ``source`` names it in messages."""
    try:
        lines, duplicates = key_lines(text)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{where}: not valid YAML: {problem}") from None
    checker = _Checker(source, lines, base_dir)
    for path, first, again in duplicates:
        checker.problem(path, f"given twice (lines {first} and {again}); keep one", again)
    manifest = checker.manifest(document)
    if checker.problems:
        raise ManifestError(f"{source} is not a valid airgap manifest:", details=checker.problems)
    assert manifest is not None
    return manifest


class _Checker(Checker):
    """Reads an airgap/v1 manifest section by section."""

    # -- the manifest ----------------------------------------------------------------------

    def manifest(self, document: Any) -> Manifest | None:
        if document is None:
            self.problem("", "the manifest is empty; it needs apiVersion, kind and "
                             "stack.version at least")
            return None
        if not isinstance(document, dict):
            self.problem("", f"expected a mapping of keys ({', '.join(_TOP_KEYS)}), "
                             f"got {describe(document)}")
            return None
        top = self.mapping(document, "", _TOP_KEYS)
        for key, expected in (("apiVersion", API_VERSION), ("kind", KIND)):
            if key not in top:
                self.problem(key, f"required; write `{key}: {expected}`")
            elif top[key] != expected:
                self.problem(key, f"{top[key]!r} is not supported; this airgap reads "
                                  f"{key}: {expected}")
        version = self.stack_version(top)
        registry = self.registry(top.get("registry"))
        packages = self.boolean(top.get("packages"), "packages", True)
        if registry.tailored and not packages:
            self.problem("packages", "false cannot go with registry.flavor: tailored, whose "
                                     "image is made of the packages; remove one of them")
        return Manifest(
            stack_version=version or "0.0.0",
            platforms=self.platforms(top.get("platforms")),
            registry=registry,
            integrations=self.integrations(top.get("integrations")),
            artifacts=self.artifacts(top.get("artifacts")),
            packages=packages,
            sources=self.sources(top.get("sources")),
            trust_keys=self.trust(top.get("trust")),
            source=self.source,
            document=top,
        )

    def stack_version(self, top: dict[str, Any]) -> str | None:
        if "stack" not in top:
            self.problem("stack", "required; write `stack: {version: 9.0.0}`")
            return None
        stack = self.mapping(top["stack"], "stack", ("version",))
        if "version" not in stack:
            self.problem("stack.version", "required: the Elastic Stack version, like 9.0.0")
            return None
        version = self.string(stack["version"], "stack.version", "9.0.0")
        if version is not None and not _VERSION_RE.match(version):
            self.problem("stack.version", f"{version!r} is not a version x.y.z (like 9.0.0)")
            return None
        return version

    def platforms(self, value: Any) -> Platforms:
        section = self.mapping(value, "platforms", ("os", "arch", "formats"))
        default = Platforms()
        return Platforms(
            os=self.choices(section.get("os"), "platforms.os", elastic.OS_NAMES, default.os),
            arch=self.choices(section.get("arch"), "platforms.arch", elastic.ARCH_NAMES,
                              default.arch, elastic.ARCH_ALIASES),
            formats=self.choices(section.get("formats"), "platforms.formats", elastic.FORMATS,
                                 default.formats),
        )

    def registry(self, value: Any) -> RegistrySpec:
        section = self.mapping(value, "registry", ("image", "flavor", "variant", "tag",
                                                   *_TAILORED_KEYS))
        default = RegistrySpec()
        image = default.image
        if section.get("image") is not None:
            text = self.string(section["image"], "registry.image", default.image)
            if text is not None and is_image_name(text, tagged=False):
                image = text
            elif text is not None:
                self.problem("registry.image", f"{text!r} is not an image repository; give it "
                                               "without tag or digest (use registry.tag)")
        flavor = default.flavor
        if section.get("flavor") is not None:
            flavor = self.choice(section["flavor"], "registry.flavor", elastic.FLAVORS) or flavor
        variant = None
        if section.get("variant") is not None:
            variant = self.choice(section["variant"], "registry.variant", elastic.VARIANTS)
        tag = None
        if section.get("tag") is not None:
            tag = self.string(section["tag"], "registry.tag", "lite-9.0.0")
            if tag is not None and not is_tag(tag):
                self.problem("registry.tag", f"{tag!r} is not a valid image tag")
                tag = None
        spec = RegistrySpec(image=image, flavor=flavor, variant=variant, tag=tag)
        return self.tailored(section, spec)

    # -- registry.flavor: tailored ----------------------------------------------------------

    def tailored(self, section: dict[str, Any], spec: RegistrySpec) -> RegistrySpec:
        given = [key for key in _TAILORED_KEYS if section.get(key) is not None]
        if not spec.tailored:
            for key in given:
                self.problem(f"registry.{key}", f"only for registry.flavor: tailored (the "
                                                f"{spec.flavor} image holds its own packages)")
            return spec
        base = None
        if section.get("base") is not None:
            example = elastic.base_image(None)
            text = self.string(section["base"], "registry.base", example)
            last = (text or "").rsplit("/", 1)[-1]
            if text is not None and is_image_name(text, tagged=True) and ":" in last:
                base = text
            elif text is not None:
                self.problem("registry.base", f"{text!r} is not an image name with a tag, "
                                              f"like {example}")
        pairs: list[tuple[str, str | None]] = []
        extras: dict[str, ExtraPackage] = {}
        for path, item in self.items(section.get("packages"), "registry.packages"):
            match = _EXTRA_PACKAGE_RE.match(item) if isinstance(item, str) else None
            if match is None:
                self.problem(path, f"expected a package name like 'nginx', or a name and "
                                   f"version like 'nginx@2.0.0', got {describe(item)}")
                continue
            pairs.append((path, match.group(1)))
            extras.setdefault(match.group(1), ExtraPackage(match.group(1), match.group(2)))
        names = self.unique(pairs)
        return RegistrySpec(image=spec.image, flavor=spec.flavor, variant=spec.variant,
                            tag=spec.tag, base=base,
                            packages=tuple(extras[name] for name in names),
                            all_versions=self.boolean(section.get("all_versions"),
                                                      "registry.all_versions", False))

    def integrations(self, value: Any) -> tuple[str, ...]:
        pairs: list[tuple[str, str | None]] = []
        for path, item in self.items(value, "integrations"):
            if isinstance(item, str) and _INTEGRATION_RE.match(item):
                pairs.append((path, item))
            else:
                self.problem(path, f"expected an integration package name like 'nginx', "
                                   f"got {describe(item)}")
        return self.unique(pairs)

    def artifacts(self, value: Any) -> ArtifactsSpec:
        section = self.mapping(value, "artifacts", ("products", "fips"))
        products: tuple[str, ...] | None = None
        raw = section.get("products", "auto")
        if raw is not None and raw != "auto":
            known = tuple(elastic.PRODUCTS)
            pairs: list[tuple[str, str | None]] = []
            for path, item in self.items(raw, "artifacts.products"):
                if isinstance(item, str) and item in elastic.PRODUCTS:
                    pairs.append((path, item))
                    continue
                hint = difflib.get_close_matches(str(item), known, n=1, cutoff=0.6)
                more = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(known)})"
                self.problem(path, f"{item!r} is not a known product{more}")
            products = self.unique(pairs)
        return ArtifactsSpec(products=products,
                             fips=self.boolean(section.get("fips"), "artifacts.fips", False))

    def sources(self, value: Any) -> Sources:
        section = self.mapping(value, "sources", ("registry", "artifacts", "epr", "ca_cert"))
        default = Sources()
        ca = section.get("ca_cert")
        return Sources(
            registry=self.url(section.get("registry"), "sources.registry", default.registry,
                              folder=False, root_only=True),
            artifacts=self.url(section.get("artifacts"), "sources.artifacts",
                               default.artifacts, folder=True),
            epr=self.url(section.get("epr"), "sources.epr", default.epr, folder=True),
            ca_cert=None if ca is None else self.file(ca, "sources.ca_cert"),
        )

    def trust(self, value: Any) -> tuple[Path, ...]:
        section = self.mapping(value, "trust", ("keys",))
        found = [self.file(item, path) for path, item in self.items(section.get("keys"),
                                                                      "trust.keys")]
        return tuple(dict.fromkeys(p for p in found if p is not None))
