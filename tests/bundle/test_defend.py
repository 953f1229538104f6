"""Elastic Defend's manifests read strictly: what Elastic publishes reads, anything else is
refused with a message, and a bundle's Defend artifacts age."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from airgap.bundle.defend import BadDefendManifest, read_manifest_zip, stale_warnings
from airgap.bundle.description import read_description
from tests.peers.defend import make_manifest_zip


def entry(content: bytes = b"rules\n" * 100, **changes: Any) -> dict[str, Any]:
    encoded = zlib.compress(content)
    sha = hashlib.sha256(encoded).hexdigest()
    return {"relative_url": f"/downloads/endpoint/artifacts/rules/{sha}",
            "compression_algorithm": "zlib", "encryption_algorithm": "none",
            "decoded_sha256": hashlib.sha256(content).hexdigest(),
            "decoded_size": len(content), "encoded_sha256": sha,
            "encoded_size": len(encoded), **changes}


def document(**artifacts: dict[str, Any]) -> dict[str, Any]:
    return {"manifest_version": "1.0.42", "schema_version": "v1",
            "artifacts": artifacts or {"production-rules-linux-v1": entry()}}


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "artifacts-9.0.0.zip"
    path.write_bytes(data)
    return path


def test_a_manifest_as_elastic_publishes_it_reads(tmp_path: Path) -> None:
    path = write(tmp_path, make_manifest_zip(document(), key=None,
                                             extra={"manifest.sig": b"\x00" * 512}))
    manifest = read_manifest_zip(path, "artifacts-9.0.0.zip")
    assert manifest.manifest_version == "1.0.42" and manifest.schema_version == "v1"
    assert manifest.signed is True
    [one] = manifest.entries
    assert one.identifier == "production-rules-linux-v1"
    assert one.path.startswith("downloads/endpoint/artifacts/rules/")
    assert one.bundle_path == "security/" + one.path
    assert one.compression == "zlib"


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(("data", "message"), [
    (b"PK\x03\x04 not really", "not a readable zip"),
    (b"<html>blocked by proxy</html>", "not a readable zip"),
    (zipped("other.json", b"{}"), "the zip holds no manifest.json"),
    (zipped("manifest.json", b"{not json"), "manifest.json is not JSON"),
    (zipped("manifest.json", b"[" * 100_000 + b"]" * 100_000), "manifest.json is not JSON"),
    (zipped("manifest.json", b"[]"), "expected an object"),
    (zipped("manifest.json", json.dumps({"artifacts": {}}).encode()), "no manifest_version"),
    (make_manifest_zip(document(a=entry(relative_url="downloads/x"))), "relative_url: not a "
                                                                       "path like"),
    (make_manifest_zip(document(a=entry(relative_url="/downloads/../../etc/passwd"))),
     "is not a plain path below the server's root"),
    (make_manifest_zip(document(a=entry(relative_url="/downloads/x?y=1"))),
     "is not a plain path"),
    (make_manifest_zip(document(a=entry(relative_url="/downloads//x"))), "is not a plain path"),
    (make_manifest_zip(document(a=entry(relative_url="/downloads/%2e%2e/x"))),
     "is not a plain path"),
    (make_manifest_zip(document(a=entry(relative_url="/elsewhere/rules/abc"))),
     "'/elsewhere/rules/abc' is not below /downloads/, where Elastic Defend's artifacts lie"),
    (make_manifest_zip(document(a=entry(relative_url="/downloads"))), "is not below"),
    (make_manifest_zip(document(a=entry(
        relative_url="/downloads/endpoint/manifest/artifacts-9.0.0.zip"))),
     "is where a manifest lies"),
    (make_manifest_zip(document(a=entry(encoded_sha256="abc"))),
     "artifacts.a.encoded_sha256: not a SHA-256 in hex"),
    (make_manifest_zip(document(a=entry(decoded_size=-1))), "decoded_size: not a size"),
    (make_manifest_zip(document(a=entry(encoded_size=True))), "encoded_size: not a size"),
    (make_manifest_zip(document(a=entry(compression_algorithm="lzma"))),
     "'lzma' is not one of none, zlib"),
    (make_manifest_zip(document(a=entry(encryption_algorithm="aes"))),
     "encryption_algorithm: 'aes' is not supported"),
    (make_manifest_zip(document(a=entry(compression_algorithm="none"))),
     "uncompressed, yet its encoded and decoded hashes differ"),
    (make_manifest_zip(document(a=entry(), b=entry(decoded_size=3))),
     "name /downloads/endpoint/artifacts/rules/"),
])
def test_what_is_not_a_manifest_is_refused_saying_why(tmp_path: Path, data: bytes,
                                                      message: str) -> None:
    with pytest.raises(BadDefendManifest) as refused:
        read_manifest_zip(write(tmp_path, data), "artifacts-9.0.0.zip")
    assert message in refused.value.message
    assert refused.value.message.startswith("artifacts-9.0.0.zip:")


def test_a_member_twice_and_an_oversized_zip_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with pytest.warns(UserWarning), zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", json.dumps(document()))
        archive.writestr("manifest.json", json.dumps(document()))
    with pytest.raises(BadDefendManifest, match="a member is in the zip twice"):
        read_manifest_zip(write(tmp_path, buffer.getvalue()), "m.zip")
    big = write(tmp_path, b"\0" * ((16 << 20) + 1))
    with pytest.raises(BadDefendManifest, match="larger than"):
        read_manifest_zip(big, "m.zip")


def test_two_identifiers_may_share_one_file(tmp_path: Path) -> None:
    same = entry()
    manifest = read_manifest_zip(write(tmp_path, make_manifest_zip(document(a=same, b=same))),
                                 "m.zip")
    assert len(manifest.entries) == 1


def test_artifacts_fetched_more_than_30_days_ago_warn(rich_bundle: Path) -> None:
    description = read_description(rich_bundle)
    [record] = description.defend
    fetched = datetime.datetime.fromisoformat(record.fetched.replace("Z", "+00:00"))
    assert stale_warnings(description, fetched + datetime.timedelta(days=30)) == []
    [warning] = stale_warnings(description, fetched + datetime.timedelta(days=31, hours=1))
    assert warning.startswith("Elastic Defend's protection artifacts for Endpoint 9.0.0 "
                              "(manifest_version 1.0.137) were fetched 31 days ago")
    assert "at least every 30 days; fetch the bundle again" in warning
