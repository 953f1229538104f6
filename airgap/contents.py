"""``airgap inspect``: what a bundle holds, read from its bundle.json (nothing re-hashed)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgap import bundle
from airgap.errors import BundleError


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

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {"bundle": str(self.path), "created": self.created,
                "tool_version": self.tool_version, "stack_version": self.stack_version,
                "image": self.image, "artifacts": self.artifacts, "packages": self.packages,
                "keys": self.keys, "files": self.files, "bytes": self.size,
                "complete": self.complete, "signed": self.signed}


def describe_bundle(path: Path) -> BundleContents:
    """Summarise the bundle at ``path`` from its bundle.json.

    bundle.json is not checked here: one that is damaged (a field of the wrong type) is a
    :class:`BundleError` pointing at ``airgap verify``, never a traceback.
    """
    document = bundle.read_description(path)
    try:
        return _summarise(path, document)
    except (AttributeError, TypeError, ValueError, ArithmeticError) as exc:
        raise BundleError(f"{path / bundle.DESCRIPTION} is damaged and cannot be summarised "
                          f"({type(exc).__name__}: {exc})",
                          details=[f"run `airgap verify {path}` to see what is wrong"]
                          ) from None


def _summarise(path: Path, document: dict[str, Any]) -> BundleContents:
    """The summary; raises AttributeError, TypeError, ValueError or ArithmeticError (a
    size of 1e999) on a damaged document."""
    items = [i for i in document.get("items", []) if isinstance(i, dict)]
    artifacts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    packages = []
    for item in items:
        verification = item.get("verification") or {}
        if item.get("kind") == "artifact":
            artifacts[str(verification.get("product"))].append({
                "platform": verification.get("platform"), "format": verification.get("format"),
                "path": item.get("path"), "size": item.get("size")})
        elif item.get("kind") == "package":
            packages.append({"name": verification.get("package"),
                             "version": verification.get("version"),
                             "path": item.get("path"), "size": item.get("size")})
    image = document.get("image") or {}
    resolved = (document.get("manifest") or {}).get("resolved") or {}
    return BundleContents(
        path=path,
        created=str(document.get("created", "")),
        tool_version=str((document.get("tool") or {}).get("version", "")),
        stack_version=str(resolved.get("stack_version", "")),
        image={"reference": image.get("reference"), "digest": image.get("digest"),
               "upstream_digest": image.get("upstream_digest"),
               "platforms": {p: v.get("manifest") for p, v in
                             (image.get("platforms") or {}).items()},
               "size": sum(int(i.get("size", 0)) for i in items
                           if str(i.get("path", "")).startswith(f"{bundle.IMAGES}/"))},
        artifacts=dict(artifacts),
        packages=packages,
        keys=[{"fingerprint": k.get("fingerprint"), "uids": k.get("uids"),
               "elastic": k.get("elastic")} for k in document.get("keys", [])],
        files=len(items) + 1,
        size=sum(int(i.get("size", 0)) for i in items),
        complete=(path / bundle.SUMS).is_file(),
        signed=(path / bundle.SUMS_SIGNATURE).is_file(),
    )
