"""The ``registry`` section of a manifest: the distribution image to pull, or the base
image and packages of a tailored registry, read strictly (see :mod:`airgap.manifest.model`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airgap import elastic, package_registry
from airgap.manifest.strict import Checker, describe
from airgap.oci.reference import is_image_name, is_tag

# name or name@version, the version a package version (pre-releases allowed) as the
# registry writes them.
_EXTRA_PACKAGE_RE = re.compile(
    r"^([a-z0-9][a-z0-9_]*)(?:@((?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z.-]+)?))?\Z")
_TAILORED_KEYS = ("base", "packages", "all_versions")


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
        return self.base or package_registry.base_image(self.variant)


def read_registry(checker: Checker, value: Any) -> RegistrySpec:
    """``registry``: which image, or for ``tailored`` which base and packages."""
    section = checker.mapping(value, "registry", ("image", "flavor", "variant", "tag",
                                                  *_TAILORED_KEYS))
    default = RegistrySpec()
    image = default.image
    if section.get("image") is not None:
        text = checker.string(section["image"], "registry.image", default.image)
        if text is not None and is_image_name(text, tagged=False):
            image = text
        elif text is not None:
            checker.problem("registry.image", f"{text!r} is not an image repository; give "
                                              "it without tag or digest (use registry.tag)")
    flavor = default.flavor
    if section.get("flavor") is not None:
        flavor = checker.choice(section["flavor"], "registry.flavor", elastic.FLAVORS) \
            or flavor
    variant = None
    if section.get("variant") is not None:
        variant = checker.choice(section["variant"], "registry.variant", elastic.VARIANTS)
    tag = None
    if section.get("tag") is not None:
        tag = checker.string(section["tag"], "registry.tag", "lite-9.0.0")
        if tag is not None and not is_tag(tag):
            checker.problem("registry.tag", f"{tag!r} is not a valid image tag")
            tag = None
    spec = RegistrySpec(image=image, flavor=flavor, variant=variant, tag=tag)
    return _tailored(checker, section, spec)


def _tailored(checker: Checker, section: dict[str, Any], spec: RegistrySpec) -> RegistrySpec:
    """``registry.base``, ``registry.packages`` and ``registry.all_versions``: for
    ``flavor: tailored`` only."""
    if not spec.tailored:
        for key in _TAILORED_KEYS:
            if section.get(key) is not None:
                checker.problem(f"registry.{key}", f"only for registry.flavor: tailored (the "
                                                   f"{spec.flavor} image holds its own "
                                                   "packages)")
        return spec
    base = None
    if section.get("base") is not None:
        example = package_registry.base_image(None)
        text = checker.string(section["base"], "registry.base", example)
        last = (text or "").rsplit("/", 1)[-1]
        if text is not None and is_image_name(text, tagged=True) and ":" in last:
            base = text
        elif text is not None:
            checker.problem("registry.base", f"{text!r} is not an image name with a tag, "
                                             f"like {example}")
    pairs: list[tuple[str, str | None]] = []
    extras: dict[str, ExtraPackage] = {}
    for path, item in checker.items(section.get("packages"), "registry.packages"):
        match = _EXTRA_PACKAGE_RE.match(item) if isinstance(item, str) else None
        if match is None:
            checker.problem(path, "expected a package name like 'nginx', or a name and "
                                  f"version like 'nginx@2.0.0', got {describe(item)}")
            continue
        pairs.append((path, match.group(1)))
        extras.setdefault(match.group(1), ExtraPackage(match.group(1), match.group(2)))
    names = checker.unique(pairs)
    return RegistrySpec(image=spec.image, flavor=spec.flavor, variant=spec.variant,
                        tag=spec.tag, base=base,
                        packages=tuple(extras[name] for name in names),
                        all_versions=checker.boolean(section.get("all_versions"),
                                                     "registry.all_versions", False))
