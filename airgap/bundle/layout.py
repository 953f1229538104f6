"""The bundle directory's layout: its folder and file names, and what each file is.

::

    BUNDLE/
      bundle.json          what is inside, where it came from, how it was verified
      SHA512SUMS           every other file, coreutils format: `sha512sum -c` checks it
      SHA512SUMS.asc       optional: the operator's signature of SHA512SUMS
      keys/                the public keys the contents were verified with
      images/              one OCI image layout, every platform, each blob once
      downloads/           artifacts.elastic.co's downloads/ tree, ready to serve
      packages/            integration package zips with their .sig
      security/            artifacts.security.elastic.co's tree: Elastic Defend's manifests
                           and the protection artifacts they list
      tools/               optional: airgap's own wheelhouse, to install it on the other side

See docs/bundle.md for the format.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from airgap import elastic
from airgap.bundle.scan import medium_folder
from airgap.errors import BundleError, ServerResponseError, UsageError, setting

SUMS = "SHA512SUMS"
SUMS_SIGNATURE = "SHA512SUMS.asc"
DESCRIPTION = "bundle.json"
LOCK = ".airgap.lock"
#: Where a fetch writes until its commit: not part of the bundle (airgap.bundle.staging).
STAGING = ".airgap-next"
KEYS = "keys"
IMAGES = "images"        # one OCI image layout
DOWNLOADS = "downloads"  # artifacts.elastic.co's downloads/ tree
PACKAGES = "packages"    # packages/<name>/<name>-<version>.zip and .sig
SECURITY = "security"    # artifacts.security.elastic.co's tree, from its root
TOOLS = "tools"          # tools/<wheelhouse>/: airgap itself, for the isolated side
#: The folders only airgap writes: a fetch may remove what it does not list there.
OWN_FOLDERS = (IMAGES, DOWNLOADS, PACKAGES, KEYS, SECURITY, TOOLS)
#: Files of a bundle that SHA512SUMS does not list (it cannot list itself or its signature).
NOT_SUMMED = frozenset({SUMS, SUMS_SIGNATURE, LOCK})
ARTIFACT_SIGNATURE = ".asc"
ARTIFACT_CHECKSUM = ".sha512"
PACKAGE = ".zip"
PACKAGE_SIGNATURE = ".sig"


def relative(bundle: Path, path: Path) -> str:
    """``path`` below ``bundle`` as a POSIX path, refusing anything outside it."""
    resolved = path.resolve()
    root = bundle.resolve()
    if root not in resolved.parents:
        raise ServerResponseError(f"{path} is outside the bundle {bundle}")
    return resolved.relative_to(root).as_posix()


def inside(bundle: Path, relative_path: str) -> Path:
    """``bundle / relative_path``, refusing absolute paths and anything that leaves it."""
    if relative_path.startswith("/") or "\\" in relative_path or "\n" in relative_path:
        raise BundleError(f"{relative_path!r} is not a path inside the bundle")
    target = bundle / relative_path
    root = bundle.resolve()
    if root not in target.resolve().parents:
        raise BundleError(f"{relative_path!r} leads outside the bundle")
    return target


def check_output_folder(root: Path) -> None:
    """Refuse to write a bundle into a folder that holds something else.

    A fetch removes files it does not list from the bundle's own folders, so it must
    only ever work in a new or empty folder, a bundle, or what an interrupted fetch left
    (recognised by its lock file). The empty ``lost+found`` of a fresh ext4 medium's top
    leaves a folder empty.
    """
    if not root.exists():
        return
    if not root.is_dir():
        raise UsageError(f"{root} exists and is not a directory",
                          details=[f"give {setting('output')} a new or empty folder, or an "
                                   "existing bundle"])
    if (root / DESCRIPTION).is_file() or (root / LOCK).is_file() or (root / STAGING).is_dir():
        return
    try:
        empty = all(medium_folder(entry) for entry in root.iterdir())
    except OSError as exc:
        raise BundleError(f"{root}: cannot read the folder: {exc.strerror}") from None
    if not empty:
        raise UsageError(f"{root} is not empty and is not an airgap bundle",
                          details=[f"give {setting('output')} a new or empty folder, or an "
                                   "existing bundle"])


def stray_files(root: Path, wanted: Iterable[str]) -> list[str]:
    """Files in the bundle's own folders that ``wanted`` does not name, and ``.part`` files
    left at the top: what earlier or interrupted fetches left behind."""
    keep = set(wanted)
    found = [p.relative_to(root).as_posix() for folder in OWN_FOLDERS
             for p in (root / folder).rglob("*") if p.is_file() or p.is_symlink()]
    found += [p.name for p in root.glob("*.part") if p.is_file()]
    return sorted(p for p in found if p not in keep)


def signature_for(path: str) -> str | None:
    """Where the signature of the file at ``path`` must be, or None if it needs none.

    bundle.json is not signed by anyone: ``airgap verify`` decides from where a file lies
    which files must carry a signature (every artifact under ``downloads/`` an ``.asc``,
    every package zip under ``packages/`` a ``.sig``).
    """
    if path.startswith(f"{DOWNLOADS}/") and not path.endswith((ARTIFACT_SIGNATURE,
                                                                ARTIFACT_CHECKSUM)):
        return path + ARTIFACT_SIGNATURE
    if path.startswith(f"{PACKAGES}/") and path.endswith(PACKAGE):
        return path + PACKAGE_SIGNATURE
    return None


def signed_by(path: str) -> str | None:
    """The file whose signature or Elastic checksum lies at ``path`` (``x.tar.gz`` for
    ``downloads/.../x.tar.gz.asc``, a zip for its ``.sig``), or None when it is neither."""
    if path.startswith(f"{DOWNLOADS}/"):
        for suffix in (ARTIFACT_SIGNATURE, ARTIFACT_CHECKSUM):
            if path.endswith(suffix):
                return path.removesuffix(suffix)
    if path.startswith(f"{PACKAGES}/") and path.endswith(PACKAGE_SIGNATURE):
        return path.removesuffix(PACKAGE_SIGNATURE)
    return None


def checksum_for(path: str) -> str | None:
    """Where Elastic's ``.sha512`` of the file at ``path`` must be, or None."""
    if signature_for(path) is not None and path.startswith(f"{DOWNLOADS}/"):
        return path + ARTIFACT_CHECKSUM
    return None


def kind_of(path: str) -> str | None:
    """The bundle.json kind the file at ``path`` must have, when its place decides it."""
    if path.startswith(f"{DOWNLOADS}/"):
        if path.endswith(ARTIFACT_SIGNATURE):
            return "artifact-signature"
        return "artifact-checksum" if path.endswith(ARTIFACT_CHECKSUM) else "artifact"
    if path.startswith(f"{PACKAGES}/"):
        if path.endswith(PACKAGE):
            return "package"
        if path.endswith(PACKAGE_SIGNATURE):
            return "package-signature"
    if path.startswith(f"{SECURITY}/"):
        below = path.removeprefix(f"{SECURITY}/")
        return "defend-manifest" if elastic.is_defend_manifest_path(below) else \
            "defend-artifact"
    if path.startswith(f"{TOOLS}/"):
        return "tool"
    return None
