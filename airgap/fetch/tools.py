"""``airgap fetch --with-tool DIR``: airgap's own wheelhouse carried in the bundle.

``make wheelhouse`` writes ``dist/airgap-<version>-wheelhouse/``: airgap's wheel, the
wheels of every dependency for the Python versions and platforms a site may have,
``requirements.txt`` (every wheel pinned with its SHA-256) and ``install.sh``. A fetch
copies it to ``BUNDLE/tools/<its name>/``, every file hashed as it is copied and listed
in SHA512SUMS, so that the isolated side checks it with ``sha512sum -c`` and installs
airgap with ``pip install --no-index --find-links --require-hashes``.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from airgap.bundle.layout import TOOLS
from airgap.bundle.medium import recognise
from airgap.bundle.staging import Staging
from airgap.errors import UsageError, setting
from airgap.files import atomic_output
from airgap.net.download import Fetched
from airgap.trust.digests import CHUNK, Hasher

INSTALL_SCRIPT = "install.sh"
REQUIREMENTS = "requirements.txt"
MAX_FILES = 1000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\Z")


def check_wheelhouse(source: Path) -> list[Path]:
    """The files of the wheelhouse at ``source``, or a :class:`UsageError` saying why it is
    not one (checked before any download)."""
    flag = setting("with_tool")
    if not source.is_dir():
        raise UsageError(f"{flag} {source}: no such folder",
                         details=["build it with `make wheelhouse` (dist/airgap-<version>-"
                                  "wheelhouse/)"])
    if not _NAME.match(source.name):
        raise UsageError(f"{flag} {source}: a folder name bundle paths cannot hold")
    files = []
    for entry in sorted(source.iterdir()):
        if recognise(entry, top=False) is not None:
            continue  # what macOS adds on a FAT32 or exFAT medium (._NAME, .DS_Store): left
        mode = entry.lstat().st_mode
        if not stat.S_ISREG(mode) or not _NAME.match(entry.name):
            raise UsageError(f"{flag} {source}: {entry.name!r} is not a plain file; a "
                             "wheelhouse holds wheels and its install script only")
        files.append(entry)
    names = {f.name for f in files}
    if not {INSTALL_SCRIPT, REQUIREMENTS} <= names or not any(
            n.startswith("airgap-") and n.endswith(".whl") for n in names):
        raise UsageError(f"{flag} {source} is not an airgap wheelhouse: it needs airgap's "
                         f"wheel, {REQUIREMENTS} and {INSTALL_SCRIPT}",
                         details=["build it with `make wheelhouse`"])
    if len(files) > MAX_FILES:
        raise UsageError(f"{flag} {source}: more than {MAX_FILES} files")
    return files


def copy_wheelhouse(source: Path, staging: Staging) -> list[Fetched]:
    """Copy the wheelhouse into the bundle's ``tools/<name>/`` (staged until the fetch
    commits), each file hashed as it goes."""
    target = staging.path(f"{TOOLS}/{source.name}")
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in check_wheelhouse(source):
        dest = target / path.name
        hasher = Hasher(sha256=False)
        executable = path.stat().st_mode & 0o111
        with path.open("rb") as reader, atomic_output(dest, 0o755 if executable else 0o644
                                                      ) as writer:
            while chunk := reader.read(CHUNK):
                hasher.update(chunk)
                writer.write(chunk)
        copied.append(Fetched(dest, path.name, hasher.digests(), reused=False))
    return copied
