"""``airgap split BUNDLE -o PARTS --size SIZE``: a bundle in volumes that fit the medium.

PARTS/001, PARTS/002, ... each hold at most SIZE bytes (:mod:`airgap.carry.volumes`): the
pieces, plain files with six-digit names, and the same index (and its signature, with
``sign_with``) in every volume. Every file is read once: its pieces are written and
hashed in the same pass, and the whole file is checked against SHA512SUMS, so a damaged
bundle is refused rather than carried. The index is written last: a volume without one
is not finished.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from airgap.bundle import layout
from airgap.bundle.delta import identity
from airgap.bundle.description import read_description
from airgap.bundle.lock import refuse_while_written
from airgap.bundle.scan import medium_folder, scan
from airgap.bundle.staging import interrupted_commit
from airgap.bundle.sums import parse_sums
from airgap.carry.index import INDEX, INDEX_SIGNATURE, PIECE_NAME, Piece, VolumeIndex
from airgap.carry.volumes import Limits, blocks, pack
from airgap.errors import (
    BundleError,
    ChecksumMismatchError,
    FileSystemError,
    UsageError,
    setting,
)
from airgap.files import PART, atomic_output, atomic_write
from airgap.reporter import Reporter
from airgap.threads import map_in_threads
from airgap.trust.digests import CHUNK, Hasher
from airgap.trust.signing import OperatorKey
from airgap.units import human_size

_SIGNATURE_SLACK = 512  # an armoured signature's length varies by a few bytes


@dataclass(frozen=True)
class SplitSettings:
    """What ``airgap split`` was asked to do."""

    bundle: Path
    output: Path
    limits: Limits
    sign_with: str | None = None
    gnupg_home: Path | None = None
    jobs: int = field(default_factory=lambda: os.cpu_count() or 2)


@dataclass(frozen=True)
class SplitResult:
    """The volumes written."""

    output: Path
    bundle: str
    volumes: tuple[Path, ...]
    sizes: tuple[int, ...]  # bytes each volume holds, in whole blocks
    pieces: int
    files: int
    size: int
    signed: bool

    def to_dict(self) -> dict[str, Any]:
        """What the split wrote, for ``--json``."""
        return {"bundle": self.bundle, "output": str(self.output),
                "volumes": [{"folder": str(f), "bytes": size}
                            for f, size in zip(self.volumes, self.sizes, strict=True)],
                "pieces": self.pieces, "files": self.files, "bytes": self.size,
                "signed": self.signed}


def split(settings: SplitSettings, reporter: Reporter) -> SplitResult:
    """Write ``settings.bundle`` as volumes into ``settings.output``."""
    root, output, limits = settings.bundle, settings.output, settings.limits
    files, sums, bundle_identity = _bundle_files(root, reporter)
    delta = read_description(root).delta
    earlier = _check_output(output, root)
    operator = OperatorKey(settings.sign_with, settings.gnupg_home) if settings.sign_with \
        else None
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()

    def index_of(pieces: Sequence[Piece]) -> VolumeIndex:
        return VolumeIndex(bundle_identity, created.replace("+00:00", "Z"),
                           max(p.volume for p in pieces), limits.size, limits.block,
                           limits.max_file, tuple(pieces),
                           delta.base if delta is not None else None)

    # The index's size depends on the pieces, which depend on the room it leaves.
    signature_room = 0
    if operator is not None:
        signature_room = blocks(len(operator.sign(b"airgap: the size of a signature\n"))
                                + _SIGNATURE_SLACK, limits.block)
    reserve = limits.block + signature_room
    for _attempt in range(16):
        pieces = pack(files, limits, reserve)
        needed = blocks(len(index_of(pieces).to_bytes()), limits.block) + signature_room
        if needed <= reserve:
            break
        reserve = needed
    else:  # pragma: no cover - each round only grows the room kept, by whole blocks
        raise UsageError(f"no room for the index in volumes of {limits.size} bytes: give a "
                         f"larger {setting('size')}")
    index = index_of(pieces)
    if limits.max_file is not None and len(index.to_bytes()) > limits.max_file:
        raise UsageError(f"{setting('max_file')} {limits.max_file} is too small for the "
                         f"index of {len(pieces)} pieces")

    folders = _volume_folders(output, index.volumes)
    fresh = not output.exists()
    try:
        for folder in earlier:
            shutil.rmtree(folder)
        output.mkdir(parents=True, exist_ok=True)
        for folder in folders:
            folder.mkdir()
        hashed = _write_pieces(root, folders, index, sums, bundle_identity, settings.jobs,
                               reporter)
        index = replace(index, pieces=tuple(replace(p, sha512=hashed[p.name])
                                            for p in index.pieces))
        data = index.to_bytes()
        signature = operator.sign(data) if operator is not None else None
        if signature is not None and blocks(len(signature), limits.block) > signature_room:
            raise UsageError("the index's signature came out larger than the room kept for "
                             "it; run the split again")
        for folder in folders:
            if signature is not None:
                atomic_write(folder / INDEX_SIGNATURE, signature)
            atomic_write(folder / INDEX, data)
    except OSError as exc:
        _remove(output, folders, fresh)
        raise FileSystemError.from_os_error(exc, left=(
            f"the volumes written so far were removed; the split writes "
            f"{human_size(sum(blocks(size, limits.block) for _, size in files))} and the "
            "indexes")) from None
    except BaseException:
        _remove(output, folders, fresh)
        raise
    sizes = tuple(sum(blocks(p.size, limits.block) for p in index.of_volume(n))
                  + blocks(len(data), limits.block)
                  + (blocks(len(signature), limits.block) if signature else 0)
                  for n in range(1, index.volumes + 1))
    return SplitResult(output, bundle_identity, tuple(folders), sizes, len(index.pieces),
                       len(files), sum(size for _, size in files), operator is not None)


def what_is_left(bundle: Path, output: Path) -> str:
    """What a split stopped by Ctrl-C or SIGTERM left, read from the disk (so that it is
    true however far it got), and what to run."""
    try:
        volumes = [entry for entry in output.iterdir() if _is_volume(entry)] \
            if output.is_dir() else []
    except OSError:
        volumes = []
    if volumes:
        kept = f"{output} holds the {len(volumes)} volume(s) of an earlier split, as they were"
    else:
        kept = f"no volume is left in {output}: what was written was removed"
    return f"{kept}; {bundle} is as it was: run the same command again"


def _remove(output: Path, folders: Sequence[Path], fresh: bool) -> None:
    """Remove the volumes this split wrote (and ``output`` when it made it)."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    if fresh:
        with contextlib.suppress(OSError):
            output.rmdir()


def _bundle_files(root: Path, reporter: Reporter
                  ) -> tuple[list[tuple[str, int]], dict[str, str], str]:
    """Every file of the complete bundle at ``root`` with its size, its SHA512SUMS entries
    and its identity; refuses a bundle that holds more, or less, than SHA512SUMS lists
    (what a medium's system added is said, and not carried)."""
    if not root.is_dir():
        raise UsageError(f"{root}: no such bundle directory")
    refuse_while_written(root)
    if interrupted_commit(root):
        raise BundleError(f"{root}: a fetch was stopped while it put its new files in place",
                          details=["run the same airgap fetch again to finish it, then split"])
    try:
        sums_bytes = (root / layout.SUMS).read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{root} is not a complete bundle: it has no {layout.SUMS}") from None
    sums, problems = parse_sums(sums_bytes.decode("utf-8", errors="replace"))
    found = scan(root, skip=frozenset({layout.STAGING}))  # an unfinished fetch's, not carried
    for said in found.medium.warnings(root):
        reporter.warning(said)
    wrong = [f"{odd.path}: {odd.message}" for odd in found.odd] + problems
    if found.lost is not None and (lost := found.lost.problem()) is not None:
        wrong.append(f"{lost.path}: {lost.message}")
    wrong += [f"{p}: not in {layout.SUMS}" for p in sorted(found.regular - set(sums)
                                                           - layout.NOT_SUMMED)]
    wrong += [f"{p}: listed in {layout.SUMS} but missing" for p in sorted(set(sums)
                                                                         - found.regular)]
    if wrong:
        raise ChecksumMismatchError(f"{root} is not intact: nothing was split",
                                    details=[*wrong[:20], f"run airgap verify {root}"])
    paths = sorted(set(sums) | ({layout.SUMS, layout.SUMS_SIGNATURE} & found.regular))
    return [(p, (root / p).lstat().st_size) for p in paths], sums, identity(sums_bytes)


def _check_output(output: Path, bundle: Path) -> list[Path]:
    """Refuse an output folder that holds anything but an earlier split's volumes; return
    those, which this split replaces (an interrupted split is simply run again)."""
    resolved = output.resolve()
    if resolved == bundle.resolve() or bundle.resolve() in resolved.parents:
        raise UsageError(f"{setting('output')} {output} is inside the bundle it splits")
    if not output.exists():
        return []
    entries = [e for e in output.iterdir() if not medium_folder(e)] if output.is_dir() \
        else [output]
    if not all(_is_volume(entry) for entry in entries):
        raise UsageError(f"{output} is not a new or empty folder, nor one holding volumes",
                         details=[f"give {setting('output')} a folder of its own for the "
                                  "volumes"])
    return entries


def _is_volume(folder: Path) -> bool:
    """A folder an earlier split wrote: a number, holding only pieces and the index (or
    the temporary files of an interrupted write)."""
    if not (folder.is_dir() and not folder.is_symlink() and folder.name.isdigit()):
        return False
    return all(f.is_file() and not f.is_symlink() and (
        PIECE_NAME.match(f.name) or f.name in (INDEX, INDEX_SIGNATURE)
        or (f.name.startswith(".") and f.name.endswith(PART))) for f in folder.iterdir())


def _volume_folders(output: Path, count: int) -> list[Path]:
    width = max(3, len(str(count)))
    return [output / f"{number:0{width}d}" for number in range(1, count + 1)]


def _write_pieces(root: Path, folders: Sequence[Path], index: VolumeIndex,
                  sums: dict[str, str], bundle_identity: str, jobs: int,
                  reporter: Reporter) -> dict[str, str]:
    """Write every piece, each file read once; return each piece's SHA-512."""
    files = index.files()
    total = sum(p.size for p in index.pieces)
    hashed: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()
    reporter.task_started("split", f"writing {len(index.pieces)} pieces", total)

    def one(path: str) -> None:
        whole = Hasher(sha256=False)
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        with (root / path).open("rb", buffering=0) as source:
            for number, piece in enumerate(files[path]):
                # SHA-512 streams: the whole file's hash, read at the end of its first
                # piece, is that piece's; only the later pieces are hashed twice.
                first = number == 0
                part = whole if first else Hasher(sha256=False)
                # the volume's folder is synced once, by its index written last
                with atomic_output(folders[piece.volume - 1] / piece.name,
                                   sync_folder=False) as out:
                    remaining = piece.size
                    while remaining:
                        if stop.is_set():
                            raise KeyboardInterrupt
                        count = source.readinto(view[:min(CHUNK, remaining)])
                        if not count:
                            raise ChecksumMismatchError(f"{root / path} became shorter while "
                                                        "it was split")
                        part.update(view[:count])
                        if not first:
                            whole.update(view[:count])
                        out.write(view[:count])
                        remaining -= count
                        reporter.task_advanced("split", count)
                with lock:
                    hashed[piece.name] = part.digests().sha512
        expected = bundle_identity if path == layout.SUMS else sums.get(path)
        if expected is not None and whole.digests().sha512 != expected:
            raise ChecksumMismatchError(f"{root / path}: its SHA-512 differs from "
                                        f"{layout.SUMS}: the bundle is damaged, nothing was "
                                        "split", details=[f"run airgap verify {root}"])

    order = sorted(files, key=lambda p: -sum(piece.size for piece in files[p]))
    map_in_threads(one, order, jobs, stop)
    reporter.task_finished("split", "done")
    return hashed
