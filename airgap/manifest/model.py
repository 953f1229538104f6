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

from airgap import elastic, package_registry
from airgap.errors import ManifestError
from airgap.files import FileTooLargeError, read_regular
from airgap.manifest.registry import RegistrySpec, read_registry
from airgap.manifest.strict import LOADER, Checker, TooComplex, check_bounds, describe, key_lines
from airgap.oci.reference import is_image_name, is_tag

API_VERSION = "airgap/v1"
KIND = "Bundle"

_VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)\Z")
_INTEGRATION_RE = re.compile(r"^[a-z0-9][a-z0-9_]*\Z")
_PLATFORM_RE = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?\Z")

#: A manifest is a few hundred bytes; a full one with comments a few KB.
MAX_SIZE = 1 << 20

_TOP_KEYS = ("apiVersion", "kind", "stack", "platforms", "registry", "integrations",
             "artifacts", "packages", "images", "security", "sources", "trust")


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
class ArtifactsSpec:
    """Which binaries to fetch: ``products`` is None for ``auto``."""

    products: tuple[str, ...] | None = None
    fips: bool = False
    #: Also the macOS universal builds, where Elastic publishes them (endpoint-security).
    darwin_universal: bool = False


@dataclass(frozen=True)
class ExtraImage:
    """A container image to carry besides the registry's: ``name`` is the repository
    (``docker.elastic.co/elastic-agent/elastic-agent``); ``tag`` None is the stack
    version; ``platforms`` None are the registry image's."""

    name: str
    tag: str | None = None
    platforms: tuple[str, ...] | None = None
    #: The known name it was given by (``elastic-agent``), if any.
    known: str | None = None


@dataclass(frozen=True)
class SecuritySpec:
    """Elastic Defend's protection artifacts: ``endpoint_versions`` None is ``auto`` (the
    stack version's when the integrations include endpoint)."""

    endpoint_versions: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Sources:
    """Where to fetch from; the defaults are Elastic's public endpoints."""

    registry: str = elastic.DEFAULT_REGISTRY_URL
    artifacts: str = elastic.DEFAULT_ARTIFACTS_URL
    epr: str = elastic.DEFAULT_EPR_URL
    security: str = elastic.DEFAULT_SECURITY_URL
    ca_cert: Path | None = None


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``document`` is the YAML mapping exactly as given."""

    stack_version: str
    platforms: Platforms = Platforms()
    registry: RegistrySpec = field(default_factory=RegistrySpec)
    integrations: tuple[str, ...] = ()
    artifacts: ArtifactsSpec = ArtifactsSpec()
    packages: bool = True
    images: tuple[ExtraImage, ...] = ()
    security: SecuritySpec = SecuritySpec()
    sources: Sources = Sources()
    trust_keys: tuple[Path, ...] = ()
    source: str = "<manifest>"
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: The line of each key path (``integrations[1]``), for messages about the manifest.
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def where(self, path: str) -> str:
        """``site.yaml:9: integrations[1]``: where a key path is, for a message."""
        line = self.lines.get(path)
        return f"{self.source}:{line}: {path}" if line else f"{self.source}: {path}"

    @property
    def registry_tag(self) -> str:
        """The image tag the registry settings resolve to."""
        r = self.registry
        return package_registry.registry_tag(self.stack_version, r.flavor, r.variant, r.tag)

    @property
    def endpoint_versions(self) -> tuple[str, ...]:
        """The Endpoint versions whose Defend artifacts to fetch."""
        chosen = self.security.endpoint_versions
        if chosen is not None:
            return chosen
        return (self.stack_version,) if elastic.DEFEND_INTEGRATION in self.integrations else ()


def load_manifest(path: Path) -> Manifest:
    """Read and validate the manifest at ``path``; relative paths in it resolve against
    its folder. Raises :class:`ManifestError` listing every problem found."""
    try:
        text = read_regular(path, MAX_SIZE).decode("utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest file") from None
    except FileTooLargeError:
        raise ManifestError(f"{path}: larger than the {MAX_SIZE // 1024} KiB a manifest may "
                            "have: is it the right file?") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc}") from None
    return parse_manifest(text, source=str(path), base_dir=path.resolve().parent)


def parse_manifest(text: str, *, source: str, base_dir: Path) -> Manifest:
    """Validate manifest ``text``; ``source`` names it in messages."""
    if len(text) > MAX_SIZE:
        raise ManifestError(f"{source}: larger than the {MAX_SIZE // 1024} KiB a manifest "
                            "may have")
    try:
        check_bounds(text)
        lines, duplicates = key_lines(text)
        document = yaml.load(text, Loader=LOADER)  # noqa: S506 - a safe loader
    except TooComplex as exc:
        raise ManifestError(f"{source}:{exc.line}: refused: the document {exc}; a "
                            "manifest needs nothing like it") from None
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
            images=self.images(top.get("images")),
            security=self.security(top.get("security"), version or "0.0.0"),
            sources=self.sources(top.get("sources")),
            trust_keys=self.trust(top.get("trust")),
            source=self.source,
            document=top,
            lines=dict(self.lines),
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
        return read_registry(self, value)

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
        section = self.mapping(value, "artifacts", ("products", "fips", "darwin_universal"))
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
                             fips=self.boolean(section.get("fips"), "artifacts.fips", False),
                             darwin_universal=self.boolean(section.get("darwin_universal"),
                                                           "artifacts.darwin_universal", False))

    # -- more images and Elastic Defend's artifacts ------------------------------------------

    def images(self, value: Any) -> tuple[ExtraImage, ...]:
        found: list[ExtraImage] = []
        seen: dict[tuple[str, str | None], str] = {}
        for path, item in self.items(value, "images"):
            image = self.image(item, path)
            if image is None:
                continue
            key = (image.name, image.tag)
            if key in seen:
                self.problem(path, f"{image.name} is already given at {seen[key]}")
                continue
            seen[key] = path
            found.append(image)
        return tuple(found)

    def image(self, item: Any, path: str) -> ExtraImage | None:
        known = tuple(elastic.KNOWN_IMAGES)
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            self.problem(path, f"expected a known image ({', '.join(known)}) or a mapping "
                               f"with name, tag and platforms, got {describe(item)}")
            return None
        section = self.mapping(item, path, ("name", "tag", "platforms"))
        # A name given as a bare string has no line of its own: the item's.
        at = self.lines.get(f"{path}.name") or self.lines.get(path)
        name = self.string(section.get("name"), f"{path}.name", "elastic-agent") \
            if "name" in section else None
        if name is None:
            if "name" not in section:
                self.problem(f"{path}.name", f"required: a known image ({', '.join(known)}) "
                                             "or an image repository", at)
            return None
        repository = elastic.KNOWN_IMAGES.get(name, name)
        if not is_image_name(repository, tagged=False) or "/" not in repository:
            hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            more = f"; did you mean {hint[0]!r}?" if hint else \
                f" (known: {', '.join(known)}, or a repository like " \
                "docker.elastic.co/elastic-agent/elastic-agent)"
            self.problem(f"{path}.name", f"{name!r} is not a known image or an image "
                                         f"repository without tag{more}", at)
            return None
        tag = None
        if section.get("tag") is not None:
            tag = self.string(section["tag"], f"{path}.tag", "9.0.0")
            if tag is not None and not is_tag(tag):
                self.problem(f"{path}.tag", f"{tag!r} is not a valid image tag")
                return None
        platforms = None
        if section.get("platforms") is not None:
            pairs: list[tuple[str, str | None]] = []
            for item_path, platform in self.items(section["platforms"], f"{path}.platforms"):
                if isinstance(platform, str) and _PLATFORM_RE.match(platform):
                    pairs.append((item_path, platform))
                else:
                    self.problem(item_path, f"expected a platform like linux/amd64 or "
                                            f"linux/arm64, got {describe(platform)}")
            platforms = self.unique(pairs) or None
        return ExtraImage(repository, tag, platforms, name if name in known else None)

    def security(self, value: Any, stack_version: str) -> SecuritySpec:
        section = self.mapping(value, "security", ("endpoint_artifacts",))
        raw = section.get("endpoint_artifacts", "auto")
        if raw is None or raw == "auto":
            return SecuritySpec()
        if raw is False:
            return SecuritySpec(())
        if raw is True:
            raw = [stack_version]
        versions: list[tuple[str, str | None]] = []
        for path, item in self.items(raw, "security.endpoint_artifacts"):
            if isinstance(item, str) and _VERSION_RE.match(item):
                versions.append((path, item))
            else:
                self.problem(path, f"expected an Endpoint version like 9.0.0, got "
                                   f"{describe(item)} (quote it if YAML reads a number)")
        return SecuritySpec(self.unique(versions))

    def sources(self, value: Any) -> Sources:
        section = self.mapping(value, "sources", ("registry", "artifacts", "epr", "security",
                                                  "ca_cert"))
        default = Sources()
        ca = section.get("ca_cert")
        return Sources(
            registry=self.url(section.get("registry"), "sources.registry", default.registry,
                              folder=False, root_only=True),
            artifacts=self.url(section.get("artifacts"), "sources.artifacts",
                               default.artifacts, folder=True),
            epr=self.url(section.get("epr"), "sources.epr", default.epr, folder=True),
            security=self.url(section.get("security"), "sources.security", default.security,
                              folder=True),
            ca_cert=None if ca is None else self.file(ca, "sources.ca_cert"),
        )

    def trust(self, value: Any) -> tuple[Path, ...]:
        section = self.mapping(value, "trust", ("keys",))
        found = [self.file(item, path) for path, item in self.items(section.get("keys"),
                                                                      "trust.keys")]
        return tuple(dict.fromkeys(p for p in found if p is not None))
