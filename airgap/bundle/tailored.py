"""A tailored registry's packages layer, proved to hold exactly the bundle's verified packages.

No distribution image lets the isolated side check its packages against Elastic's
signatures; a tailored one does. The layer bundle.json names must end every platform of
the image (its blob the last layer of each manifest, its diff ID the last of each
config), and, read as a stream (gunzipped, with a bound on what it may inflate to, the
tar parsed one 512-byte header at a time), hold the folders of the package path and,
beneath it, for every package zip SHA512SUMS lists under ``packages/``, that zip and
its ``.sig`` with the same SHA-512 — and nothing else: no other member, no member twice,
no link, device or whiteout, no data past the tar's end. The bundle's own zips and
``.sig`` files are checked against the signing keys by :mod:`airgap.bundle.verify`, so
each member is too. The uncompressed stream must have the diff ID the configs name.
"""

from __future__ import annotations

import contextlib
import hashlib
import tarfile
import threading
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from airgap import package_registry
from airgap.bundle import layout
from airgap.bundle.description import BundleDescription, Tailored
from airgap.errors import AirgapError
from airgap.oci.layout import Layout, image_platforms
from airgap.oci.media import digest_hex, parse_image_manifest

KIND = "tailored"
BLOCK = 512
CHUNK = 1 << 20
Add = Callable[[str, str, str], None]


class _Damaged(Exception):
    """The layer cannot be read further; the message says where it broke."""


class _Inflated:
    """The layer's uncompressed bytes, read on demand, hashed for its diff ID, and
    refused past ``limit`` bytes (a layer that inflates without end)."""

    def __init__(self, handle: BinaryIO, limit: int, stop: threading.Event) -> None:
        self.handle = handle
        self.limit = limit
        self.stop = stop
        self.inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.diff = hashlib.sha256()
        self.total = 0
        self.pending = memoryview(b"")  # a view: taking from it copies nothing

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the stream."""
        out = bytearray()
        while len(out) < size:
            if not self.pending and not self._more():
                break
            take = min(size - len(out), len(self.pending))
            out += self.pending[:take]
            self.pending = self.pending[take:]
        return bytes(out)

    def _more(self) -> bool:
        if self.stop.is_set():
            raise KeyboardInterrupt
        while not self.inflate.eof:
            data = self.inflate.unconsumed_tail or self.handle.read(CHUNK)
            if not data:
                raise _Damaged("the layer ends inside its gzip stream")
            try:
                chunk = self.inflate.decompress(data, CHUNK)
            except zlib.error as exc:
                raise _Damaged(f"not a valid gzip stream ({exc})") from None
            if chunk:
                self.total += len(chunk)
                if self.total > self.limit:
                    raise _Damaged(f"it inflates to more than the {self.limit} bytes the "
                                   "bundle's packages can take")
                self.diff.update(chunk)
                self.pending = memoryview(chunk)
                return True
        return False

    def finish(self) -> None:
        """Read to the end; anything after the gzip stream is a problem."""
        while self.read(CHUNK):
            pass
        if self.inflate.unused_data or self.handle.read(1):
            raise _Damaged("it has data after its gzip stream")


def _expected(tailored: Tailored, sums: Mapping[str, str], add: Add) -> dict[str, str]:
    """Each member the layer must hold, and the bundle file it must equal."""
    prefix = tailored.package_path.strip("/")
    zips = sorted(p for p in sums if p.startswith(f"{layout.PACKAGES}/")
                  and p.endswith(layout.PACKAGE))
    if set(zips) != set(tailored.packages):
        add(layout.DESCRIPTION, "description", "its tailored packages are not the package "
                                               "zips SHA512SUMS lists")
    members: dict[str, str] = {}
    for path in zips:
        for file in (path, path + layout.PACKAGE_SIGNATURE):
            member = f"{prefix}/{PurePosixPath(file).name}"
            if member in members:
                add(file, KIND, f"has the same file name as {members[member]}: the registry "
                                "would see one of them only")
            members[member] = file
    return members


def _check_image(root: Path, tailored: Tailored, description: BundleDescription,
                 add: Add) -> None:
    """Every platform of the image ends with the layer (its blob and its diff ID)."""
    for platform, image in description.image.platforms.items():
        if not image.layers or image.layers[-1] != tailored.layer:
            add(layout.DESCRIPTION, "description", f"the {platform} image does not end with "
                                                   "the packages layer")
    images = Layout(root / layout.IMAGES)
    try:
        _, manifests = image_platforms(images, description.image.reference)
        for descriptor in manifests:
            where = f"{layout.IMAGES}/blobs/sha256/{descriptor.hex}"
            manifest = parse_image_manifest(images.read_json(descriptor.digest), where)
            if not manifest.layers or manifest.layers[-1].digest != tailored.layer:
                add(where, KIND, f"its last layer is not the packages layer {tailored.layer}")
            config = images.read_json(manifest.config.digest).get("rootfs")
            diff_ids = config.get("diff_ids") if isinstance(config, dict) else None
            if not isinstance(diff_ids, list) or len(diff_ids) != len(manifest.layers) \
                    or diff_ids[-1:] != [tailored.diff_id]:
                add(f"{layout.IMAGES}/blobs/sha256/{manifest.config.hex}", KIND,
                    "its last diff ID is not the packages layer's")
    except AirgapError as exc:
        add(f"{layout.IMAGES}/index.json", KIND, exc.message)


def check_tailored(root: Path, description: BundleDescription, sums: Mapping[str, str],
                   add: Add, stop: threading.Event) -> int:
    """Report through ``add`` every way the tailored image's packages layer differs from
    the bundle's verified packages; return how many package zips the layer was read for
    (0 for an image that is not tailored, or a layer that could not be read)."""
    tailored = description.image.tailored
    if tailored is None:
        registry = description.manifest.given.get("registry")
        if isinstance(registry, Mapping) and registry.get("flavor") == "tailored":
            # else removing the record from bundle.json would pass any layer unread
            add(layout.DESCRIPTION, "description", "the manifest asks for a tailored "
                "registry, but bundle.json records no tailored image to check its packages "
                "layer against: fetch the bundle again")
        return 0
    if tailored.package_path != package_registry.PACKAGE_PATH:
        add(layout.DESCRIPTION, "description", f"the tailored packages lie in "
                                               f"{tailored.package_path[:80]!r}, not in "
                                               f"{package_registry.PACKAGE_PATH}, which the "
                                               "server reads")
    try:
        blob = f"{layout.IMAGES}/blobs/sha256/{digest_hex(tailored.layer)}"
    except AirgapError as exc:
        add(layout.DESCRIPTION, "description", exc.message)
        return 0
    _check_image(root, tailored, description, add)
    members = _expected(tailored, sums, add)
    sizes = 0
    for file in members.values():
        with contextlib.suppress(OSError):  # missing: reported by the hashing
            sizes += (root / file).lstat().st_size
    limit = sizes + 2 * BLOCK * (len(members) + 4) + CHUNK
    try:
        with (root / blob).open("rb") as handle:
            stream = _Inflated(handle, limit, stop)
            seen = _members(stream, blob, members, sums, add)
            stream.finish()
    except OSError as exc:
        add(blob, KIND, f"the packages layer cannot be read: {exc.strerror or exc}")
        return 0
    except _Damaged as exc:
        add(blob, KIND, f"the packages layer is damaged: {exc}")
        return 0
    if f"sha256:{stream.diff.hexdigest()}" != tailored.diff_id:
        add(blob, KIND, "the packages layer does not have the diff ID its image names")
    for member in sorted(set(members) - seen):
        add(blob, KIND, f"{member}: missing from the packages layer ({members[member]} is "
                        "in the bundle)")
    return sum(1 for member in members if member.endswith(".zip"))


_HEADER_ONLY = (tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
                tarfile.BLKTYPE, tarfile.FIFOTYPE)
_TYPES = {tarfile.DIRTYPE: "folder", tarfile.SYMTYPE: "symbolic link",
          tarfile.LNKTYPE: "hard link", tarfile.CHRTYPE: "character device",
          tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "FIFO"}


def _members(stream: _Inflated, blob: str, members: Mapping[str, str],
             sums: Mapping[str, str], add: Add) -> set[str]:
    """Read the tar to its end, checking each member; return the package members seen."""
    folders = {str(p) for name in members for p in PurePosixPath(name).parents
               if str(p) != "."}
    seen: set[str] = set()
    packages: set[str] = set()
    while True:
        block = stream.read(BLOCK)
        if len(block) < BLOCK:
            raise _Damaged("its tar ends without an end-of-archive marker")
        if block == bytes(BLOCK):
            break
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise _Damaged(f"a damaged tar header after {sorted(seen)[-1:] or 'the start'} "
                           f"({exc})") from None
        name = info.name
        # Data follows a header as the readers of layers (Go's archive/tar) take it.
        digest = _read_data(stream, 0 if info.type in _HEADER_ONLY else info.size)
        if name in seen:
            add(blob, KIND, f"{name[:200]}: given twice in the packages layer: the later "
                            "copy would replace the first")
        seen.add(name)
        if info.isdir() and name in folders:
            if info.mode != 0o755 or info.uid or info.gid:
                add(blob, KIND, f"{name}/: not the folder airgap writes (mode 0755, 0:0)")
            continue
        target = members.get(name) if info.isreg() else None
        if target is None:
            what = "file" if info.isreg() else _TYPES.get(
                info.type, f"member of tar type {info.type.decode(errors='replace')!r}")
            add(blob, KIND, f"{name[:200]}: a {what} that is not one of the bundle's "
                            "verified packages")
            continue
        packages.add(name)
        if digest != sums.get(target):
            add(blob, KIND, f"{name}: its SHA-512 differs from {target} in SHA512SUMS")
        if info.mode != 0o644 or info.uid or info.gid:
            add(blob, KIND, f"{name}: not the file airgap writes (mode 0644, 0:0)")
    rest = stream.read(CHUNK)
    while rest:
        if rest.strip(b"\0"):
            raise _Damaged("it has data after the tar's end-of-archive marker")
        rest = stream.read(CHUNK)
    for folder in sorted(folders - seen):
        add(blob, KIND, f"{folder}/: missing from the packages layer")
    return packages


def _read_data(stream: _Inflated, size: int) -> str:
    """Read a member's data and padding; its SHA-512."""
    digest = hashlib.sha512()
    remaining = size
    while remaining:
        chunk = stream.read(min(remaining, CHUNK))
        if not chunk:
            raise _Damaged("it ends inside a member")
        digest.update(chunk)
        remaining -= len(chunk)
    padding = -size % BLOCK
    if padding and len(stream.read(padding)) != padding:
        raise _Damaged("it ends inside a member")
    return digest.hexdigest()
