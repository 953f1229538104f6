"""verify proves a tailored registry's layer holds exactly the bundle's verified packages.

Each case rewrites the layer and then everything that names it — configs, manifests,
index, bundle.json, SHA512SUMS — consistently, and even signs SHA512SUMS again with the
operator's key: only the check of the layer's members can then tell. (Without that key, a
rewrite is also caught by the operator's signature, and the image is then vouched for by
nothing.)
"""

from __future__ import annotations

import copy
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airgap.cli import main
from tests.layers import Member, file_member, members_of, rewrite_layer
from tests.peers.gpgkeys import SigningKey


def same(members: list[Member]) -> list[Member]:
    return members


def extra(members: list[Member]) -> list[Member]:
    return [*members, file_member("evil-6.6.6.zip", b"PK not from Elastic")]


def missing(members: list[Member]) -> list[Member]:
    return [m for m in members if not m[0].name.endswith("nginx-2.0.0.zip")]


def altered(members: list[Member]) -> list[Member]:
    return [(info, data[:-1] + b"!") if info.name.endswith("nginx-2.0.0.zip") else (info, data)
            for info, data in members]


def twice(members: list[Member]) -> list[Member]:
    return [*members, file_member("nginx-2.0.0.zip", b"PK a second nginx")]


def linked(members: list[Member]) -> list[Member]:
    return [*missing(members), file_member("nginx-2.0.0.zip", b"", tarfile.SYMTYPE)]


def whiteout(members: list[Member]) -> list[Member]:
    return [*members, file_member(".wh.system-2.1.0.zip", b"")]


def owned(members: list[Member]) -> list[Member]:
    changed = []
    for info, data in members:
        if info.name.endswith("nginx-2.0.0.zip.sig"):
            info = copy.copy(info)
            info.mode, info.uid = 0o4755, 1000
        changed.append((info, data))
    return changed


CASES: list[tuple[Callable[[list[Member]], list[Member]], str]] = [
    (extra, "packages/package-registry/evil-6.6.6.zip: a file that is not one of the "
            "bundle's verified packages"),
    (missing, "packages/package-registry/nginx-2.0.0.zip: missing from the packages layer "
              "(packages/nginx/nginx-2.0.0.zip is in the bundle)"),
    (altered, "packages/package-registry/nginx-2.0.0.zip: its SHA-512 differs from "
              "packages/nginx/nginx-2.0.0.zip in SHA512SUMS"),
    (twice, "packages/package-registry/nginx-2.0.0.zip: given twice in the packages layer"),
    (linked, "packages/package-registry/nginx-2.0.0.zip: a symbolic link that is not one of "
             "the bundle's verified packages"),
    (whiteout, "packages/package-registry/.wh.system-2.1.0.zip: a file that is not one of"),
    (owned, "packages/package-registry/nginx-2.0.0.zip.sig: not the file airgap writes "
            "(mode 0644, 0:0)"),
]


def verify(bundle: Path, capsys: pytest.CaptureFixture[str], *options: str
           ) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["verify", str(bundle), "--json", *options])
    envelope = json.loads(capsys.readouterr().out)
    return code, {**envelope["result"], "problems": envelope["problems"]}


def test_a_layer_rewritten_with_the_same_members_passes(
        tailored_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        operator: SigningKey, operator_key: Path) -> None:
    # The rewriting itself leaves a bundle that verifies: what fails below is the member.
    bundle = tmp_path / "bundle"
    shutil.copytree(tailored_bundle, bundle)
    before = json.loads((bundle / "bundle.json").read_text())["image"]["tailored"]["layer"]
    members = members_of(bundle)
    for info, _ in members:
        info.mtime = 1  # another layer, the same members
    rewrite_layer(bundle, same(members), sign=operator)
    assert json.loads((bundle / "bundle.json").read_text())["image"]["tailored"]["layer"] != \
        before
    code, report = verify(bundle, capsys, "--trust-key", str(operator_key))
    assert (code, report["problems"]) == (0, [])
    zips = [info for info, _ in members if info.name.endswith(".zip")]
    assert report["layer_packages"] == len(zips) > 0


@pytest.mark.parametrize(("change", "expected"), CASES, ids=[c.__name__ for c, _ in CASES])
def test_an_extra_missing_or_altered_member_fails_with_exit_3(
        tailored_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        operator: SigningKey, operator_key: Path,
        change: Callable[[list[Member]], list[Member]], expected: str) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tailored_bundle, bundle)
    rewrite_layer(bundle, change(members_of(bundle)), sign=operator)
    code, report = verify(bundle, capsys, "--trust-key", str(operator_key))
    assert code == 3
    messages = [p["message"] for p in report["problems"] if p["kind"] == "tailored"]
    assert any(m.startswith(expected) for m in messages), report["problems"]
    # Nothing else is wrong: the rewrite was consistent, and signed.
    assert {p["kind"] for p in report["problems"]} == {"tailored"}, report["problems"]


def test_a_rewrite_without_the_operators_key_is_caught_by_its_signature_too(
        tailored_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        operator_key: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tailored_bundle, bundle)
    rewrite_layer(bundle, extra(members_of(bundle)))
    code, report = verify(bundle, capsys, "--trust-key", str(operator_key))
    assert code == 3
    kinds = {(p["path"], p["kind"]) for p in report["problems"]}
    assert ("SHA512SUMS.asc", "operator-signature") in kinds, report["problems"]
    assert any(kind == "tailored" for _, kind in kinds), report["problems"]
    # Without --trust-key nothing from outside vouches for the image at all.
    code, report = verify(bundle, capsys)
    assert code == 3
    assert ("images/index.json", "unvouched") in {(p["path"], p["kind"])
                                                  for p in report["problems"]}


def test_a_damaged_layer_blob_is_reported_by_name(
        tailored_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tailored_bundle, bundle)
    layer = json.loads((bundle / "bundle.json").read_text())["image"]["tailored"]["layer"]
    path = bundle / "images/blobs/sha256" / layer[7:]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    code, report = verify(bundle, capsys)
    assert code == 3
    mine = [p for p in report["problems"] if p["path"] == f"images/blobs/sha256/{layer[7:]}"]
    assert {p["kind"] for p in mine} >= {"modified", "tailored"}, mine


def test_a_rewrite_that_also_removes_the_tailored_record_is_refused(
        tailored_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        operator: SigningKey, operator_key: Path) -> None:
    # Without the record there is no layer to read: the manifest's flavor still asks for it.
    bundle = tmp_path / "bundle"
    shutil.copytree(tailored_bundle, bundle)
    rewrite_layer(bundle, extra(members_of(bundle)), sign=operator, forget=True)
    assert "tailored" not in json.loads((bundle / "bundle.json").read_text())["image"]
    code, report = verify(bundle, capsys, "--trust-key", str(operator_key))
    assert code == 3
    assert [(p["path"], p["kind"]) for p in report["problems"]] == \
        [("bundle.json", "description")], report["problems"]
    assert "records no tailored image" in report["problems"][0]["message"]
