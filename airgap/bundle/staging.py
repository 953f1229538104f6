"""How a fetch changes a bundle without ever breaking it: new files beside the old, one commit.

Every file a fetch writes goes to ``BUNDLE/.airgap-next/`` first, laid out as the bundle
is, while the bundle itself stays exactly as its ``SHA512SUMS`` describes it: a fetch
that fails, or is killed, leaves the old bundle complete and verifiable, and what it
downloaded waits there for the next run to resume. Only when everything is fetched and
checked does :func:`commit` put the new files in place: it first writes a journal
(``.airgap-next/COMMIT``) naming every move and removal, then moves the new files in,
the index last (``SHA512SUMS`` after ``bundle.json`` and the signature), and removes the
files the new plan drops. A run killed during those few renames leaves the journal, and
the next fetch finishes it (:func:`recover`) before anything else; ``airgap verify``
says so meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from airgap.bundle import layout
from airgap.errors import BundleError
from airgap.files import PART, atomic_write, fsync_folder

JOURNAL = "COMMIT"
#: Moved last, in this order: a bundle whose SHA512SUMS is the new one is the new bundle.
_INDEX = (f"{layout.IMAGES}/oci-layout", f"{layout.IMAGES}/index.json", layout.DESCRIPTION,
          layout.SUMS_SIGNATURE, layout.SUMS)


@dataclass(frozen=True)
class Staging:
    """The staging folder of the bundle at ``root``."""

    root: Path

    @property
    def folder(self) -> Path:
        """``BUNDLE/.airgap-next``."""
        return self.root / layout.STAGING

    def path(self, relative: str) -> Path:
        """Where the new copy of the bundle's file ``relative`` is written."""
        return self.folder / relative

    def live(self, relative: str) -> Path:
        """Where the bundle's file ``relative`` is."""
        return self.root / relative

    def relative(self, path: Path) -> str:
        """The bundle path of a file, whether it lies in the bundle or in staging."""
        staged = self.folder.resolve()
        resolved = path.resolve()
        if staged in resolved.parents:
            return resolved.relative_to(staged).as_posix()
        return layout.relative(self.root, path)

    def files(self) -> list[str]:
        """The complete files waiting here (partial downloads and the journal left out)."""
        if not self.folder.is_dir():
            return []
        return sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*")
                      if p.is_file() and not p.name.endswith(PART) and p.name != JOURNAL)


def pending(root: Path) -> tuple[int, int]:
    """How many files, and bytes, an unfinished fetch left in ``root``'s staging folder."""
    folder = root / layout.STAGING
    if not folder.is_dir():
        return 0, 0
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return len(files), sum(p.stat().st_size for p in files)


def interrupted_commit(root: Path) -> bool:
    """Whether a fetch was killed while it put its new files in place."""
    return (root / layout.STAGING / JOURNAL).is_file()


def commit(staging: Staging, wanted: Iterable[str], drop: Sequence[str]) -> None:
    """Make the staged files part of the bundle, the index last, and remove ``drop``.

    ``wanted`` is every file of the new bundle (the index files included): those staged
    move in; the others are already in place. The index files (``SHA512SUMS``,
    ``bundle.json`` ...) must be staged.
    """
    staged = set(staging.files())
    wanted = set(wanted)
    for name in (layout.SUMS, layout.DESCRIPTION):
        if name not in staged:
            raise BundleError(f"{staging.path(name)} is missing: the new index was not "
                              "written, nothing was changed")
    moves = sorted(staged & wanted - set(_INDEX)) + [p for p in _INDEX if p in staged]
    removals = sorted(set(drop) | ({layout.SUMS_SIGNATURE} - staged))
    atomic_write(staging.path(JOURNAL),
                 json.dumps({"moves": moves, "removals": removals}, indent=1) + "\n")
    _finish(staging, moves, removals)


def recover(root: Path) -> bool:
    """Finish a commit a killed fetch left half done; whether there was one."""
    staging = Staging(root)
    journal = staging.path(JOURNAL)
    if not journal.is_file():
        return False
    try:
        plan = json.loads(journal.read_text(encoding="utf-8"))
        moves = [_inside(str(p)) for p in plan["moves"]]
        removals = [_inside(str(p)) for p in plan["removals"]]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise BundleError(f"{journal}: the journal of an interrupted fetch cannot be read "
                          f"({exc})", details=["the bundle may be half updated: fetch it "
                                               "again into a new folder"]) from exc
    _finish(staging, moves, removals)
    return True


def _inside(relative: str) -> str:
    if relative.startswith("/") or ".." in relative.split("/"):
        raise ValueError(f"{relative!r} is not a path inside the bundle")
    return relative


def _finish(staging: Staging, moves: Sequence[str], removals: Sequence[str]) -> None:
    """Do (again) what a journal says; every step may already have been done."""
    for relative in moves:
        source, target = staging.path(relative), staging.live(relative)
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
            fsync_folder(target.parent)
    for relative in removals:
        target = staging.live(relative)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        _remove_empty_parents(staging.root, target)
    shutil.rmtree(staging.folder, ignore_errors=True)
    fsync_folder(staging.root)


def _remove_empty_parents(root: Path, target: Path) -> None:
    for parent in target.parents:
        if parent == root or not parent.is_dir():
            break
        with contextlib.suppress(OSError):
            if any(parent.iterdir()):
                break
            parent.rmdir()
