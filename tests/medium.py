"""What macOS and Windows write onto a medium, as they write it: AppleDouble ``._NAME``
files (Finder on FAT32 and exFAT), ``.DS_Store``, and the folders at a medium's top."""

from __future__ import annotations

import os
import struct
from pathlib import Path

#: The folders each system keeps at the top of a medium, with a file in each.
TOP_FOLDERS = {".Spotlight-V100": "Store-V2/store.db", ".fseventsd": "fseventsd-uuid",
               ".Trashes": "501/.keep", ".TemporaryItems": "folders.501/x",
               "System Volume Information": "IndexerVolumeGuid",
               "$RECYCLE.BIN": "S-1-5-21/desktop.ini"}


def apple_double(size: int = 4096) -> bytes:
    """An AppleDouble header file as Finder writes it (RFC 1740 version 2, "Mac OS X"
    filler): Finder info, then the resource fork, filling ``size`` bytes."""
    header = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 2)
    table = len(header) + 2 * 12
    finder = 3760
    entries = struct.pack(">III", 9, table, finder) + struct.pack(
        ">III", 2, table + finder, size - table - finder)
    body = b"\0" * 8 + b"ATTR" + b"\0" * (size - table - 12)
    return header + entries + body


def ds_store() -> bytes:
    """The start of a Finder ``.DS_Store``: its alignment word and ``Bud1``, then a buddy
    allocator's header and zeros."""
    return b"\x00\x00\x00\x01Bud1" + struct.pack(">III", 0x1000, 0x800, 0x1000) + \
        b"\0" * (6148 - 20)


def add_mac_and_windows_files(root: Path, *, top: bool = True) -> dict[str, int]:
    """What Finder leaves on copying ``root`` onto a FAT32 medium (a ``._NAME`` beside every
    file and folder, a ``.DS_Store`` in every folder), and, with ``top``, the folders macOS
    and Windows keep at the top of the medium; how many of each kind."""
    files = [Path(folder, name) for folder, _, names in os.walk(root) for name in names]
    folders = [Path(folder) for folder, _, _ in os.walk(root)]
    for path in files + [f for f in folders if f != root]:
        (path.parent / f"._{path.name}").write_bytes(apple_double())
    for folder in folders:
        (folder / ".DS_Store").write_bytes(ds_store())
    counts = {"appledouble": len(files) + len(folders) - 1, "ds_store": len(folders),
              "folders": 0}
    if top:
        for folder, inside in TOP_FOLDERS.items():
            (root / folder / inside).parent.mkdir(parents=True, exist_ok=True)
            (root / folder / inside).write_bytes(b"the medium's own")
        counts["folders"] = len(TOP_FOLDERS)
    return counts
