"""Where ``load`` and ``export-image`` write, checked before the bundle is verified: a
folder that cannot be created or written, or a tar file with no folder to go in, is a
usage error that costs seconds, not the time of a verification."""

from __future__ import annotations

import os
from pathlib import Path

from airgap.errors import UsageError, setting


def _why_unwritable(folder: Path) -> str:
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return "it is on a read-only file system" if read_only else "it is not writable"


def _not_a_folder(path: Path) -> str:
    return "is a file" if path.is_file() else "is not a folder"


def check_folder(path: Path, name: str) -> None:
    """Refuse ``path`` (the setting ``name``) unless it is a folder airgap can write in,
    or can be created with its parents."""
    existing = next((p for p in (path, *path.parents) if p.exists() or p.is_symlink()),
                    Path(path.anchor or "."))
    if existing == path:
        if not path.is_dir():
            raise UsageError(f"{setting(name)} {path} {_not_a_folder(path)}, not a folder",
                             details=[f"give {setting(name)} a folder, or move the file "
                                      "away"])
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{setting(name)} {path} cannot be written: "
                             f"{_why_unwritable(path)}",
                             details=[f"give {setting(name)} a folder you can write in"])
        return
    if not existing.is_dir():
        raise UsageError(f"{setting(name)} {path} cannot be created: {existing} "
                         f"{_not_a_folder(existing)}, not a folder",
                         details=[f"give {setting(name)} another folder, or move "
                                  f"{existing} away"])
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{setting(name)} {path} cannot be created in {existing}: "
                         f"{_why_unwritable(existing)}",
                         details=[f"give {setting(name)} a folder you can write in"])


def check_output_file(path: Path, name: str) -> None:
    """Refuse ``path`` (the setting ``name``) unless it is a file name whose folder exists
    and can be written in (the file itself is replaced whole)."""
    if path.is_dir():
        raise UsageError(f"{setting(name)} {path} is a folder: give the file to write",
                         details=[f"for example {setting(name)} {path / 'image.tar'}"])
    folder = path.parent
    if not folder.is_dir():
        what = "does not exist" if not (folder.exists() or folder.is_symlink()) \
            else _not_a_folder(folder)
        raise UsageError(f"{setting(name)} {path}: its folder {folder} {what}",
                         details=[f"create it first (mkdir -p {folder}), or give "
                                  f"{setting(name)} a file in a folder that exists"])
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{setting(name)} {path} cannot be written in {folder}: "
                         f"{_why_unwritable(folder)}",
                         details=[f"give {setting(name)} a file in a folder you can "
                                  "write in"])
