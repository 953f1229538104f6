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
from urllib.parse import urlsplit

import yaml

from airgap import elastic
from airgap.errors import ManifestError

API_VERSION = "airgap/v1"
KIND = "Bundle"

_VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_INTEGRATION_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_IMAGE_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

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
class RegistrySpec:
    """Which package registry distribution image to fetch."""

    image: str = elastic.DEFAULT_REGISTRY_IMAGE
    flavor: str = "full"
    variant: str | None = None
    tag: str | None = None


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
        lines, duplicates = _key_lines(text)
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


def _key_lines(text: str) -> tuple[dict[str, int], list[tuple[str, int, int]]]:
    """Map each key path to its line, and find keys given twice in one mapping."""
    lines: dict[str, int] = {}
    duplicates: list[tuple[str, int, int]] = []

    def walk(node: yaml.Node | None, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                path = f"{prefix}.{key}" if prefix else key
                line = key_node.start_mark.line + 1
                if key in seen:
                    duplicates.append((path, seen[key], line))
                seen[key] = line
                lines.setdefault(path, line)
                walk(value_node, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                path = f"{prefix}[{index}]"
                lines.setdefault(path, item.start_mark.line + 1)
                walk(item, path)

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    return lines, duplicates


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _one_of(value: Any, choices: tuple[str, ...]) -> str:
    return f"{value!r} is not one of {', '.join(choices)}"


class _Checker:
    """Reads the document key by key, collecting every problem instead of stopping."""

    def __init__(self, source: str, lines: dict[str, int], base_dir: Path) -> None:
        self.source = source
        self.lines = lines
        self.base_dir = base_dir
        self._found: list[tuple[int, str]] = []

    @property
    def problems(self) -> list[str]:
        """Every problem found so far, in the order of the file's lines."""
        return [text for _, text in sorted(self._found, key=lambda found: found[0])]

    def problem(self, path: str, message: str, line: int | None = None) -> None:
        line = line or self.lines.get(path, 0)
        where = f"{self.source}:{line}" if line else self.source
        self._found.append((line, f"{where}: {path}: {message}" if path else
                            f"{where}: {message}"))

    # -- generic readers -------------------------------------------------------------------

    def mapping(self, value: Any, path: str, keys: tuple[str, ...]) -> dict[str, Any]:
        """A mapping with only ``keys``; null or absent reads as empty."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping with keys {', '.join(keys)}, "
                               f"got {_describe(value)}")
            return {}
        for key in value:
            if key not in keys:
                child = f"{path}.{key}" if path else str(key)
                hint = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.6)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else \
                    f"; known keys: {', '.join(keys)}"
                self.problem(child, f"unknown key{suggestion}")
        return value

    def string(self, value: Any, path: str, example: str) -> str | None:
        if isinstance(value, str) and value.strip():
            return value.strip()
        hint = " (quote it)" if isinstance(value, int | float) else ""
        self.problem(path, f"expected a string like {example!r}, got {_describe(value)}{hint}")
        return None

    def choice(self, value: Any, path: str, choices: tuple[str, ...],
               aliases: Mapping[str, str] | None = None) -> str | None:
        aliases = aliases or {}
        if isinstance(value, str) and value in choices:
            return value
        if isinstance(value, str) and value in aliases:
            return aliases[value]
        message = _one_of(value, choices) if isinstance(value, str) else \
            f"expected one of {', '.join(choices)}, got {_describe(value)}"
        if aliases:
            message += f" (aliases: {', '.join(aliases)})"
        self.problem(path, message)
        return None

    def boolean(self, value: Any, path: str, default: bool) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        self.problem(path, f"expected true or false, got {_describe(value)}")
        return default

    def items(self, value: Any, path: str) -> list[tuple[str, Any]]:
        """The (path, item) pairs of a list; null reads as an empty list."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, f"expected a list, got {_describe(value)}")
            return []
        return [(f"{path}[{i}]", item) for i, item in enumerate(value)]

    def unique(self, pairs: list[tuple[str, str | None]]) -> tuple[str, ...]:
        """Drop failed items; report an item that repeats an earlier one."""
        seen: dict[str, str] = {}
        for item_path, item in pairs:
            if item is None:
                continue
            if item in seen:
                self.problem(item_path, f"{item} is already given at {seen[item]}")
            else:
                seen[item] = item_path
        return tuple(seen)

    def choices(self, value: Any, path: str, choices: tuple[str, ...], default: tuple[str, ...],
                aliases: Mapping[str, str] | None = None) -> tuple[str, ...]:
        if value is None:
            return default
        pairs = [(p, self.choice(v, p, choices, aliases)) for p, v in self.items(value, path)]
        if isinstance(value, list) and not value:
            self.problem(path, f"name at least one of {', '.join(choices)}")
        return self.unique(pairs) or default

    def url(self, value: Any, path: str, default: str, *, folder: bool) -> str:
        if value is None:
            return default
        text = self.string(value, path, default)
        if text is None:
            return default
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problem(path, f"{text!r} is not an http:// or https:// URL")
            return default
        if parts.query or parts.fragment:
            self.problem(path, f"{text!r} must not have a query or fragment")
            return default
        if not folder and parts.path not in ("", "/"):
            self.problem(path, f"{text!r}: give the registry's root URL, without a path")
            return default
        if folder:
            return text if text.endswith("/") else text + "/"
        return text.rstrip("/")

    def file(self, value: Any, path: str) -> Path | None:
        text = self.string(value, path, "certs/ca.pem")
        if text is None:
            return None
        resolved = (self.base_dir / Path(text).expanduser()).resolve()
        if not resolved.is_file():
            self.problem(path, f"no such file: {resolved}")
            return None
        return resolved

    # -- the manifest ----------------------------------------------------------------------

    def manifest(self, document: Any) -> Manifest | None:
        if document is None:
            self.problem("", "the manifest is empty; it needs apiVersion, kind and "
                             "stack.version at least")
            return None
        if not isinstance(document, dict):
            self.problem("", f"expected a mapping of keys ({', '.join(_TOP_KEYS)}), "
                             f"got {_describe(document)}")
            return None
        top = self.mapping(document, "", _TOP_KEYS)
        for key, expected in (("apiVersion", API_VERSION), ("kind", KIND)):
            if key not in top:
                self.problem(key, f"required; write `{key}: {expected}`")
            elif top[key] != expected:
                self.problem(key, f"{top[key]!r} is not supported; this airgap reads "
                                  f"{key}: {expected}")
        version = self.stack_version(top)
        return Manifest(
            stack_version=version or "0.0.0",
            platforms=self.platforms(top.get("platforms")),
            registry=self.registry(top.get("registry")),
            integrations=self.integrations(top.get("integrations")),
            artifacts=self.artifacts(top.get("artifacts")),
            packages=self.boolean(top.get("packages"), "packages", True),
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
        section = self.mapping(value, "registry", ("image", "flavor", "variant", "tag"))
        default = RegistrySpec()
        image = default.image
        if section.get("image") is not None:
            text = self.string(section["image"], "registry.image", default.image)
            if text is not None and "@" not in text and _IMAGE_RE.match(text):
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
            if tag is not None and not _TAG_RE.match(tag):
                self.problem("registry.tag", f"{tag!r} is not a valid image tag")
                tag = None
        return RegistrySpec(image=image, flavor=flavor, variant=variant, tag=tag)

    def integrations(self, value: Any) -> tuple[str, ...]:
        pairs: list[tuple[str, str | None]] = []
        for path, item in self.items(value, "integrations"):
            if isinstance(item, str) and _INTEGRATION_RE.match(item):
                pairs.append((path, item))
            else:
                self.problem(path, f"expected an integration package name like 'nginx', "
                                   f"got {_describe(item)}")
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
                              folder=False),
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
