"""The artifact registry of the isolated network: the bundle's ``downloads/`` tree laid out
in a folder that ``airgap serve`` (or any web server) serves to the agents."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airgap.bundle.description import read_description
from airgap.bundle.layout import DOWNLOADS
from airgap.bundle.scan import scan
from airgap.errors import UsageError
from airgap.files import copy_atomically, link_atomically
from airgap.reporter import Reporter
from airgap.trust.digests import hash_file

PHASE = "artifacts"


@dataclass(frozen=True)
class ArtifactsResult:
    """The artifact registry folder: files linked, copied, already there, replaced."""

    directory: Path
    linked: int
    copied: int
    unchanged: int
    replaced: tuple[str, ...]


def install_artifacts(root: Path, destination: Path, reporter: Reporter) -> ArtifactsResult:
    """Put the bundle's ``downloads/`` tree into ``destination``, merging with what it holds.

    Files are hard-linked when both are on one filesystem, copied otherwise; each lands
    through a temporary name and a rename, so an agent never downloads a half-written file.
    """
    source = root / DOWNLOADS
    if not source.is_dir():
        raise UsageError(f"{root} has no downloads/ folder: the bundle holds no artifacts")
    known = read_description(root).items_by_path
    linked = copied = unchanged = 0
    replaced: list[str] = []
    found = scan(source)
    for odd in found.odd:  # only with --skip-verify: verify refuses such a bundle
        reporter.warning(f"{source / odd.path}: {odd.message}; not installed")
    names = sorted(found.regular)
    reporter.phase_started(PHASE, f"laying out {len(names)} files in {destination}",
                           total=sum((source / name).stat().st_size for name in names),
                           items=len(names))
    for name in names:
        path = source / name
        relative = Path(name)
        target = destination / relative
        item = known.get(f"{DOWNLOADS}/{relative.as_posix()}")
        size = path.stat().st_size
        if target.is_file():
            if target.samefile(path) or (item and target.stat().st_size == item.size
                                         and hash_file(target).sha512 == item.sha512):
                unchanged += 1
                reporter.task_kept(str(target), str(target), size, phase=PHASE,
                                   detail="already there")
                continue
            replaced.append(relative.as_posix())
            reporter.warning(f"{target} differs from the bundle's verified copy: replacing it")
        target.parent.mkdir(parents=True, exist_ok=True)
        reporter.task_started(str(target), str(target), size, phase=PHASE)
        if link_atomically(path, target):
            linked += 1
            reporter.task_finished(str(target), "linked")
        else:
            copy_atomically(path, target)
            copied += 1
            reporter.task_advanced(str(target), size)
            reporter.task_finished(str(target), "copied")
    reporter.phase_finished(PHASE, f"{linked} linked, {copied} copied, {unchanged} already "
                                   "there")
    return ArtifactsResult(destination, linked, copied, unchanged, tuple(replaced))
