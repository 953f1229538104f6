"""What a join in progress keeps in ``BUNDLE/.airgap-join/``: the index of the set being
joined, the names of the pieces on disk, and the files being filled (``parts/<n>``, the
n-th file of the index); and how the last run puts every file in place, SHA512SUMS last.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from airgap.bundle import layout
from airgap.bundle.delta import identity, shown
from airgap.carry.index import VolumeIndex
from airgap.errors import BundleError, VerificationError
from airgap.files import atomic_write, fsync_folder

STATE = ".airgap-join"


class JoinState:
    """What a join in progress keeps in ``BUNDLE/.airgap-join``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / STATE
        self._index = self.path / "index.json"
        self._done = self.path / "done"
        self._parts = self.path / "parts"

    def index(self) -> bytes | None:
        """The index of the set being joined, or None when no join has begun."""
        try:
            return self._index.read_bytes()
        except FileNotFoundError:
            return None

    def done(self) -> set[str]:
        """The pieces joined and on disk."""
        try:
            return set(self._done.read_text(encoding="ascii", errors="replace").split())
        except FileNotFoundError:
            return set()

    def start(self, data: bytes) -> None:
        """Begin the join of the set ``data`` indexes (nothing when it has begun)."""
        self._parts.mkdir(parents=True, exist_ok=True)
        if not self._index.exists():
            atomic_write(self._index, data)

    def part(self, number: int) -> Path:
        """Where the file numbered ``number`` is filled."""
        return self._parts / str(number)

    def record(self, done: set[str]) -> None:
        """Remember ``done`` (their bytes are on disk already)."""
        atomic_write(self._done, "".join(f"{name}\n" for name in sorted(done)))

    def forget(self) -> None:
        """Remove what is left of a join that put every file in place."""
        shutil.rmtree(self.path, ignore_errors=True)

    def finish(self, index: VolumeIndex) -> None:
        """Give every file its name, SHA512SUMS last; then forget the join. A run stopped
        in the middle (Ctrl-C, ``kill -9``, a power cut) is finished by the next: a file
        whose part is gone was put in place (a rename is whole or not at all), and the
        verification that follows re-hashes every file."""
        files = list(index.files())
        sums = files.index(layout.SUMS)
        sums_part = self.part(sums)
        joined_sums = sums_part if sums_part.exists() else self.root / layout.SUMS
        try:
            joined_identity = identity(joined_sums.read_bytes())
        except OSError as exc:
            raise BundleError(f"{joined_sums}: cannot be read ({exc.strerror}): the join's "
                              f"state in {self.path} is damaged",
                              details=[f"remove {self.root} and join every volume again"]
                              ) from None
        if joined_identity != index.bundle:
            raise VerificationError(f"the joined {layout.SUMS} is not the bundle's "
                                    f"{shown(index.bundle)}: the index does not describe "
                                    "its own bundle")
        # Each folder is synced once, after its files are renamed into it, and all of
        # them before SHA512SUMS, the mark that every file is in place, takes its name.
        folders = {self._place(number, path) for number, path in enumerate(files)
                   if path != layout.SUMS}
        for folder in sorted(folders):
            fsync_folder(folder)
        fsync_folder(self._place(sums, layout.SUMS))
        self.forget()

    def _place(self, number: int, path: str) -> Path:
        """Rename the file numbered ``number`` to ``path``; the folder it went to (which
        the caller syncs)."""
        target = layout.inside(self.root, path)
        part = self.part(number)
        if not part.exists():
            if target.is_file() and not target.is_symlink():
                return target.parent  # put in place by a run that was stopped after
            raise BundleError(f"{target}: neither joined nor in place: the join's state in "
                              f"{self.path} is damaged",
                              details=[f"remove {self.root} and join every volume again"])
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            part.replace(target)
        except OSError as exc:
            raise BundleError(f"{target}: cannot be put in place: {exc.strerror}") from None
        return target.parent
