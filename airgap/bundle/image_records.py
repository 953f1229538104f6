"""The image records of ``bundle.json``: the package registry image and the others, each
with its platforms, and what a tailored registry added to its base.

Read and written as part of :class:`airgap.bundle.description.BundleDescription`, which
re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airgap.bundle.reading import Reader, names


@dataclass(frozen=True)
class PlatformImage:
    """One platform of the image: its manifest, config and layers (digests)."""

    manifest: str
    config: str
    layers: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {"manifest": self.manifest, "config": self.config, "layers": list(self.layers)}

    @classmethod
    def read(cls, reader: Reader) -> PlatformImage:
        return cls(reader.string("manifest"), reader.string("config"), reader.strings("layers"))


@dataclass(frozen=True)
class Tailored:
    """A tailored registry image: ``base`` (as ``Image.source`` served it) plus ``layer``,
    which holds the bundle's ``packages`` (their zips' paths) under ``package_path``."""

    base: str
    layer: str
    diff_id: str
    package_path: str
    packages: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {"base": self.base, "layer": self.layer, "diff_id": self.diff_id,
                "package_path": self.package_path, "packages": list(self.packages)}

    @classmethod
    def read(cls, reader: Reader) -> Tailored:
        return cls(reader.string("base"), reader.string("layer"), reader.string("diff_id"),
                   reader.string("package_path"), reader.strings("packages"))


@dataclass(frozen=True)
class Image:
    """The package registry image: what the tag named upstream, and what is stored.
    For a tailored registry, upstream is its base, and ``tailored`` says what was added."""

    reference: str
    source: str
    upstream_digest: str
    upstream_media_type: str
    digest: str
    media_type: str
    layout: str
    platforms: Mapping[str, PlatformImage]
    tailored: Tailored | None = None

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {"reference": self.reference, "source": self.source,
                "upstream_digest": self.upstream_digest,
                "upstream_media_type": self.upstream_media_type, "digest": self.digest,
                "media_type": self.media_type, "layout": self.layout,
                "platforms": {p: i.to_dict() for p, i in self.platforms.items()},
                **({"tailored": self.tailored.to_dict()} if self.tailored else {})}

    @classmethod
    def read(cls, reader: Reader) -> Image:
        platforms = reader.object("platforms")
        tailored = Tailored.read(reader.object("tailored", names(Tailored))) \
            if "tailored" in reader.value else None
        return cls(reader.string("reference"), reader.string("source"),
                   reader.string("upstream_digest"), reader.string("upstream_media_type"),
                   reader.string("digest"), reader.string("media_type"),
                   reader.string("layout"),
                   {str(p): PlatformImage.read(platforms.object(str(p), names(PlatformImage)))
                    for p in platforms.value},
                   tailored)


#: The keys of an image that is not tailored: format 1's registry image, format 2's others.
PLAIN_IMAGE = tuple(name for name in names(Image) if name != "tailored")
