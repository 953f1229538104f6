"""The artifact registry of the isolated network: the bundle's ``downloads/`` tree laid out
in a folder that ``airgap serve`` (or any web server) serves to the agents.

Files are copies of the bundle's, so that what happens on the served side (an edit, a
web server's own files) never changes the bundle: reflinks where the file system has
them (no extra space, blocks shared until either is written), plain copies otherwise.
Hard links only when asked (``hard_link``): then the served files and the bundle's are
the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airgap.bundle.description import read_description
from airgap.bundle.layout import DOWNLOADS
from airgap.bundle.medium import named_like
from airgap.bundle.scan import scan
from airgap.errors import UsageError
from airgap.files import clone_or_copy, link_atomically, remove_dead_leftovers
from airgap.reporter import Reporter
from airgap.trust.digests import hash_file

PHASE = "artifacts"


@dataclass(frozen=True)
class ArtifactsResult:
    """The artifact registry folder: files hard-linked, copied (``cloned`` of them as
    reflinks), already there, replaced."""

    directory: Path
    linked: int
    copied: int
    unchanged: int
    replaced: tuple[str, ...]
    cloned: int = 0


def install_artifacts(root: Path, destination: Path, reporter: Reporter, *,
                      hard_link: bool = False) -> ArtifactsResult:
    """Put the bundle's ``downloads/`` tree into ``destination``, merging with what it holds.

    Files are copied (reflinks where the file system can), or hard-linked with
    ``hard_link`` where both are on one file system; each lands through a temporary name
    and a rename, so an agent never downloads a half-written file.
    """
    source = root / DOWNLOADS
    if not source.is_dir():
        raise UsageError(f"{root} has no downloads/ folder: the bundle holds no artifacts")
    known = read_description(root).items_by_path
    if destination.is_dir():
        remove_dead_leftovers(destination, recursive=True)  # copies a kill -9 cut short
    linked = copied = cloned = unchanged = 0
    replaced: list[str] = []
    # What a medium's system added is set apart by the scan, never laid out; a file named
    # like one that is not one is refused by verify, and not laid out either.
    found = scan(source, top=False)
    for odd in found.odd:  # only with --skip-verify: verify refuses such a bundle
        reporter.warning(f"{source / odd.path}: {odd.message}; not installed")
    for lookalike in sorted(p for p in found.regular if named_like(p)):
        reporter.warning(f"{source / lookalike}: named like a file a medium's system adds; "
                         "not installed")
    names = sorted(p for p in found.regular if not named_like(p))
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
            same = target.samefile(path)
            if (same and hard_link) or (not same and item and target.stat().st_size == item.size
                                        and hash_file(target).sha512 == item.sha512):
                unchanged += 1
                reporter.task_kept(str(target), str(target), size, phase=PHASE,
                                   detail="already there")
                continue
            if not same:  # a link an older airgap made is replaced by a copy, silently
                replaced.append(relative.as_posix())
                reporter.warning(f"{target} differs from the bundle's verified copy: "
                                 "replacing it")
        target.parent.mkdir(parents=True, exist_ok=True)
        reporter.task_started(str(target), str(target), size, phase=PHASE)
        if hard_link and link_atomically(path, target):
            linked += 1
            reporter.task_finished(str(target), "linked")
        else:
            cloned += clone_or_copy(path, target)
            copied += 1
            reporter.task_advanced(str(target), size)
            reporter.task_finished(str(target), "copied")
    links = f", {linked} hard-linked" if linked else ""
    reporter.phase_finished(PHASE, f"{copied} copied{links}, {unchanged} already there")
    return ArtifactsResult(destination, linked, copied, unchanged, tuple(replaced), cloned)
