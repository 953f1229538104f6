"""Rewriting a tailored bundle's packages layer, and everything that names it, consistently:
what someone holding the transfer medium could do (and, given the operator's key, sign
again), for the tests that must catch it."""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from tests.peers.gpgkeys import SigningKey

Member = tuple[tarfile.TarInfo, bytes]
PREFIX = "packages/package-registry/"


def members_of(bundle: Path) -> list[Member]:
    description = json.loads((bundle / "bundle.json").read_text())
    layer = bundle / "images/blobs/sha256" / description["image"]["tailored"]["layer"][7:]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.read_bytes()))) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                for m in tar.getmembers()]


def _put(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def rewrite_layer(bundle: Path, members: list[Member], sign: SigningKey | None = None,
                  forget: bool = False) -> None:
    """Replace the packages layer with one of ``members`` and re-name it everywhere;
    ``sign`` signs the new SHA512SUMS (else the bundle's signature no longer matches);
    ``forget`` also removes bundle.json's record of the tailored image."""
    description = json.loads((bundle / "bundle.json").read_text())
    image, blobs = description["image"], bundle / "images/blobs/sha256"
    old_layer, old_diff = image["tailored"]["layer"], image["tailored"]["diff_id"]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(copy.copy(info), io.BytesIO(data) if info.isfile() else None)
    tar_bytes = raw.getvalue()
    new_diff = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    new_layer, layer_size = _put(blobs, gzip.compress(tar_bytes, mtime=0))
    renamed = {old_layer: (new_layer, layer_size)}
    index = json.loads((blobs / image["digest"][7:]).read_bytes())
    for entry in index["manifests"]:
        manifest = json.loads((blobs / entry["digest"][7:]).read_bytes())
        config = json.loads((blobs / manifest["config"]["digest"][7:]).read_bytes())
        config["rootfs"]["diff_ids"] = [new_diff if d == old_diff else d
                                        for d in config["rootfs"]["diff_ids"]]
        digest, size = _put(blobs, json.dumps(config).encode())
        renamed[manifest["config"]["digest"]] = (digest, size)
        manifest["config"].update(digest=digest, size=size)
        for layer in manifest["layers"]:
            if layer["digest"] == old_layer:
                layer.update(digest=new_layer, size=layer_size)
        digest, size = _put(blobs, json.dumps(manifest).encode())
        renamed[entry["digest"]] = (digest, size)
        entry.update(digest=digest, size=size)
    digest, size = _put(blobs, json.dumps(index).encode())
    renamed[image["digest"]] = (digest, size)
    top = json.loads((bundle / "images/index.json").read_text())
    top["manifests"][0].update(digest=digest, size=size)
    (bundle / "images/index.json").write_text(json.dumps(top))
    for old in renamed:
        (blobs / old[7:]).unlink()
    image["digest"] = digest
    image["tailored"].update(layer=new_layer, diff_id=new_diff)
    for platform in image["platforms"].values():
        platform["manifest"] = renamed[platform["manifest"]][0]
        platform["config"] = renamed[platform["config"]][0]
        platform["layers"] = [renamed.get(d, (d, 0))[0] for d in platform["layers"]]
    by_path = {f"images/blobs/sha256/{old[7:]}": new for old, new in renamed.items()}
    items = []
    for item in description["items"]:
        if item["path"] in by_path:
            item["path"] = f"images/blobs/sha256/{by_path[item['path']][0][7:]}"
        data = (bundle / item["path"]).read_bytes()
        item.update(size=len(data), sha512=hashlib.sha512(data).hexdigest())
        items.append(item)
    description["items"] = sorted(items, key=lambda i: i["path"])
    if forget:
        del image["tailored"]
    (bundle / "bundle.json").write_text(json.dumps(description, indent=2))
    sums = [(i["path"], i["sha512"]) for i in description["items"]]
    sums.append(("bundle.json", hashlib.sha512((bundle / "bundle.json").read_bytes()).hexdigest()))
    (bundle / "SHA512SUMS").write_text("".join(f"{h}  {p}\n" for p, h in sorted(sums)))
    if sign is not None:
        (bundle / "SHA512SUMS.asc").unlink(missing_ok=True)
        sign.sign(bundle / "SHA512SUMS", bundle / "SHA512SUMS.asc")


def file_member(name: str, data: bytes, kind: bytes = tarfile.REGTYPE) -> Member:
    info = tarfile.TarInfo(PREFIX + name)
    info.size, info.mode, info.type = len(data), 0o644, kind
    if kind == tarfile.SYMTYPE:
        info.size, info.linkname = 0, "/etc/shadow"
    return info, data
