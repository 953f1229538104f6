"""``airgap inspect``: what a bundle holds, read from its bundle.json (nothing re-hashed)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap.bundle.defend import stale_warnings
from airgap.bundle.delta import identity
from airgap.bundle.description import read_description
from airgap.bundle.layout import IMAGES, SUMS, SUMS_SIGNATURE


@dataclass(frozen=True)
class BundleContents:
    """A summary of one bundle."""

    path: Path
    created: str
    tool_version: str
    stack_version: str
    image: dict[str, Any]
    artifacts: dict[str, list[dict[str, Any]]]
    packages: list[dict[str, Any]]
    keys: list[dict[str, Any]]
    files: int
    size: int
    complete: bool
    signed: bool
    images: list[dict[str, Any]] = field(default_factory=list)  # besides the registry's
    defend: list[dict[str, Any]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    identity: str | None = None  # the SHA-512 of SHA512SUMS
    delta_of: str | None = None  # a delta: its base's identity
    carried: tuple[int, int] | None = None  # a delta: files and bytes it carries

    @property
    def is_delta(self) -> bool:
        return self.delta_of is not None

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {"bundle": str(self.path), "created": self.created,
                "tool_version": self.tool_version, "stack_version": self.stack_version,
                "image": self.image, "images": self.images, "artifacts": self.artifacts,
                "packages": self.packages, "defend": self.defend, "tools": self.tools,
                "keys": self.keys, "files": self.files, "bytes": self.size,
                "complete": self.complete, "signed": self.signed, "warnings": self.warnings,
                "identity": self.identity, "delta_of": self.delta_of,
                "carried": None if self.carried is None else {
                    "files": self.carried[0], "bytes": self.carried[1]}}


def describe_bundle(path: Path) -> BundleContents:
    """Summarise the bundle at ``path`` from its bundle.json.

    bundle.json is read with every field checked but not compared with the files: one
    that is damaged is a :class:`~airgap.errors.BundleError` pointing at ``airgap verify``.
    """
    description = read_description(path)
    items = description.items
    artifacts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    packages = []
    for item in items:
        verification = item.verification
        if item.kind == "artifact":
            artifacts[str(verification.product)].append({
                "platform": verification.platform, "format": verification.format,
                "path": item.path, "size": item.size})
        elif item.kind == "package":
            packages.append({"name": verification.package, "version": verification.version,
                             "path": item.path, "size": item.size})
    image = description.image
    tools = sorted({item.path.split("/")[1] for item in items if item.kind == "tool"})
    sums = path / SUMS
    carried = [i for i in items if i.origin == "carried"]
    return BundleContents(
        path=path,
        created=description.created,
        tool_version=description.tool_version,
        stack_version=description.manifest.resolved.stack_version,
        image={"reference": image.reference, "digest": image.digest,
               "upstream_digest": image.upstream_digest,
               "platforms": {p: v.manifest for p, v in image.platforms.items()},
               "size": sum(i.size for i in items if i.path.startswith(f"{IMAGES}/")),
               **({"tailored": image.tailored.to_dict()} if image.tailored else {})},
        artifacts=dict(artifacts),
        packages=packages,
        keys=[{"fingerprint": k.fingerprint, "uids": list(k.uids), "elastic": k.elastic}
              for k in description.keys],
        files=len(items) + 1,
        size=sum(i.size for i in items),
        complete=sums.is_file(),
        signed=(path / SUMS_SIGNATURE).is_file(),
        images=[{"reference": i.reference, "digest": i.digest,
                 "platforms": {p: v.manifest for p, v in i.platforms.items()}}
                for i in description.images],
        defend=[{"endpoint_version": d.endpoint_version, "manifest_version": d.manifest_version,
                 "fetched": d.fetched, "artifacts": d.artifacts, "path": d.path}
                for d in description.defend],
        tools=tools,
        warnings=stale_warnings(description),
        identity=identity(sums.read_bytes()) if sums.is_file() else None,
        delta_of=description.delta.base if description.delta is not None else None,
        carried=(len(carried), sum(i.size for i in carried))
        if description.delta is not None else None,
    )
