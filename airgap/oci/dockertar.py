"""One platform of an OCI layout's image as a tar ``docker load`` accepts, made offline.

The tar is what Docker 25's ``docker save`` writes: an OCI image layout (``oci-layout``,
``index.json``, ``blobs/sha256/…``) plus a ``manifest.json`` whose paths point into
``blobs/sha256/``. Docker 20.10 and later read the ``manifest.json``; ``skopeo copy
oci-archive:`` and ``podman load`` read the layout. It is produced as a stream, straight
from the bundle's blobs, so it can go to a file or to a Docker engine without a copy.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from airgap.errors import BundleError, ChecksumMismatchError
from airgap.oci.layout import Layout, PlatformSelection
from airgap.oci.media import CONTAINERD_NAME, OCI_INDEX, REF_NAME, Descriptor

BLOCK = 512
CHUNK = 1 << 20


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    info.uname = info.gname = "root"
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _member(name: str, data: bytes) -> Iterator[bytes]:
    yield _header(name, len(data))
    yield data
    if len(data) % BLOCK:
        yield b"\0" * (BLOCK - len(data) % BLOCK)


def _file_member(name: str, path: Path, descriptor: Descriptor,
                 before_end: Callable[[], None] | None = None,
                 check_digest: bool = True) -> Iterator[bytes | memoryview]:
    """The blob as a tar member, checked against its digest on the way out (unless
    ``check_digest`` is false: something else checks it meanwhile).

    Its last chunk is held back until the whole blob has matched (and ``before_end`` has
    returned): whoever reads the tar (a file, an engine) then sees a damaged blob, or a
    stream ``before_end`` stopped, as a tar that ends inside a member, which every reader
    refuses. A tar cut between two members can look complete.
    """
    size = descriptor.size
    yield _header(name, size)
    sent = 0
    digest = hashlib.sha256() if check_digest else None
    # Two buffers taken in turns: one holds the chunk held back while the next is read.
    # A reader gets views of them, each consumed before the next is asked for.
    buffers = [memoryview(bytearray(min(CHUNK, size + 1))) for _ in range(2)]
    held: memoryview | None = None
    with path.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffers[0]):
            sent += count
            if sent > size:
                break
            chunk = buffers[0][:count]
            if digest is not None:
                digest.update(chunk)
            if held is not None:
                yield held
            held = chunk
            buffers.reverse()
    if sent != size:
        raise BundleError(f"{path}: {sent} bytes, but its descriptor says {size}: the bundle "
                          "is damaged; run airgap verify")
    if digest is not None and digest.hexdigest() != descriptor.hex:
        raise ChecksumMismatchError(f"{path}: its content does not match its digest "
                                    f"{descriptor.digest}", details=["run airgap verify"])
    if before_end is not None:
        before_end()
    if held is not None:
        yield held
    if size % BLOCK:
        yield b"\0" * (BLOCK - size % BLOCK)


def _blob_name(descriptor: Descriptor) -> str:
    return f"blobs/sha256/{descriptor.hex}"


def _blobs(selection: PlatformSelection) -> list[Descriptor]:
    """The blobs the tar holds, each once, in the order it holds them."""
    return list({d.digest: d for d in (selection.manifest, *selection.image.blobs)}.values())


def _metadata(selection: PlatformSelection, extra_tags: Sequence[str]
              ) -> list[tuple[str, bytes]]:
    """The small members that come first: the layout marker, index.json, manifest.json."""
    tags = [t for t in (selection.reference, *extra_tags) if t]
    annotations = {CONTAINERD_NAME: selection.reference, REF_NAME: selection.tag}
    # One entry per name, as Docker 25's `docker save` writes: containerd's importer
    # (Docker's containerd image store) names images from index.json alone. The extra
    # names carry no ref.name, which stays the one tag skopeo and podman select by.
    named = [{k: v for k, v in annotations.items() if v},
             *({CONTAINERD_NAME: tag} for tag in extra_tags if tag != selection.reference)]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": selection.manifest.media_type, "digest": selection.manifest.digest,
        "size": selection.manifest.size, "annotations": names} for names in named]}
    docker_manifest = [{"Config": _blob_name(selection.image.config), "RepoTags": tags,
                        "Layers": [_blob_name(layer) for layer in selection.image.layers]}]
    return [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", json.dumps(index).encode()),
            ("manifest.json", json.dumps(docker_manifest).encode())]


def archive_size(selection: PlatformSelection, extra_tags: Sequence[str] = ()) -> int:
    """The exact length of the tar :func:`archive_stream` makes with the same arguments
    (a stream sent with a Content-Length needs no chunked framing, and no copy)."""
    def padded(size: int) -> int:
        return size + -size % BLOCK

    members = [(name, len(data)) for name, data in _metadata(selection, extra_tags)]
    members += [(_blob_name(d), d.size) for d in _blobs(selection)]
    return sum(len(_header(name, size)) + padded(size) for name, size in members) + 2 * BLOCK


def archive_stream(layout: Layout, selection: PlatformSelection,
                   extra_tags: Sequence[str] = (),
                   gate: Callable[[], None] | None = None,
                   check_digests: bool = True) -> Iterator[bytes | memoryview]:
    """The tar, in pieces (each valid until the next is asked for), for ``selection``;
    tagged with the image's reference and ``extra_tags``; every blob checked against
    its digest on the way. With ``check_digests`` false the layers are not (the caller
    has them checked otherwise; an engine also checks each layer against the config's
    diff IDs), the manifest and the config, which name everything else, still are.

    ``gate``, when given, is called before the last chunk of the last blob and may raise
    to stop the stream there: a reader has by then received everything but that chunk,
    and can load nothing from it.
    """
    blobs = _blobs(selection)
    layers = {layer.digest for layer in selection.image.layers}
    with_data = [d for d in blobs if d.size > 0]
    gated = with_data[-1].digest if with_data else None
    if gate is not None and gated is None:
        gate()  # nothing to hold back a piece of: wait before sending anything
    for name, data in _metadata(selection, extra_tags):
        yield from _member(name, data)
    for descriptor in blobs:
        path = layout.blob(descriptor.digest)
        if not path.is_file():
            raise BundleError(f"blob {descriptor.digest} is missing from {layout.root}; "
                              "run airgap verify")
        yield from _file_member(_blob_name(descriptor), path, descriptor,
                                gate if descriptor.digest == gated else None,
                                check_digests or descriptor.digest not in layers)
    yield b"\0" * (2 * BLOCK)
