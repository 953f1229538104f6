"""Elastic Defend's protection artifacts laid out for the endpoints, beside the agents'
binaries.

``load --artifacts DIR`` puts the bundle's ``downloads/`` tree in DIR; Defend's tree
(``security/downloads/endpoint/...``) goes into the same DIR, so that ``airgap serve DIR``
serves both at ``/downloads/`` and each policy's ``advanced.artifacts.global.base_url``
is the server's root. The artifacts land first and each manifest last: an endpoint that
polls meanwhile never reads a manifest naming a file not yet there. Older artifacts stay
(endpoints still on an older manifest keep downloading them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airgap.bundle.description import BundleDescription
from airgap.bundle.layout import DOWNLOADS, SECURITY
from airgap.errors import DamagedBundleError
from airgap.files import clone_or_copy, link_atomically
from airgap.reporter import Reporter
from airgap.trust.digests import hash_file


@dataclass(frozen=True)
class DefendInstall:
    """What went where: artifacts added, already there, manifests now served."""

    directory: Path
    added: int
    unchanged: int
    manifests: tuple[str, ...]  # "<endpoint version> (manifest_version <v>)"


def defend_files(description: BundleDescription) -> list[str]:
    """The bundle's Defend files in the order they are laid out (artifacts, then
    manifests); :class:`DamagedBundleError` when one lies outside ``security/downloads/``
    (checked before anything is copied: a half-laid tree would serve a broken update)."""
    below = f"{SECURITY}/{DOWNLOADS}/"
    files = sorted(path for path, item in description.items_by_path.items()
                   if item.kind == "defend-artifact")
    ordered = [*files, *(record.path for record in description.defend)]
    outside = [path for path in ordered if not path.startswith(below)]
    if outside:
        raise DamagedBundleError(
            f"{outside[0]}: an Elastic Defend file outside {below}, where endpoints would not "
            "find it at the same path; nothing was laid out",
            details=[f"{len(outside)} such file(s); a fetch refuses a manifest naming such "
                     "paths: this bundle did not come from airgap's fetch as it is"])
    return ordered


def install_defend(root: Path, description: BundleDescription, destination: Path,
                   reporter: Reporter, *, hard_link: bool = False) -> DefendInstall | None:
    """Put the bundle's Defend artifacts, then its manifests, into ``destination``
    (copies, or hard links with ``hard_link``, as the agents' binaries); None when the
    bundle holds none."""
    if not description.defend:
        return None
    known = description.items_by_path
    below = f"{SECURITY}/{DOWNLOADS}/"
    added = unchanged = 0
    for path in defend_files(description):
        source = root / path
        target = destination / path.removeprefix(below)
        item = known[path]
        same = target.is_file() and target.samefile(source)
        if target.is_file() and ((same and hard_link) or (not same and (
                target.stat().st_size == item.size and hash_file(target).sha512 == item.sha512))):
            unchanged += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (hard_link and link_atomically(source, target)):
            clone_or_copy(source, target)
        added += 1
    for record in description.defend:
        reporter.info(f"Elastic Defend {record.endpoint_version}: manifest_version "
                      f"{record.manifest_version}, {record.artifacts} artifacts")
    return DefendInstall(destination, added, unchanged, tuple(
        f"{r.endpoint_version} (manifest_version {r.manifest_version})"
        for r in description.defend))
