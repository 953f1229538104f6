"""A delta's base: a bundle, or just its bundle.json and SHA512SUMS, or an earlier delta;
read with its SHA512SUMS and bundle.json held to each other."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from airgap.bundle.delta import identity, mark, read_base, target_files
from airgap.bundle.description import read_description
from airgap.errors import BundleError


def record(bundle: Path, folder: Path) -> Path:
    """What the connected side keeps of a bundle it sent."""
    folder.mkdir()
    for name in ("bundle.json", "SHA512SUMS"):
        shutil.copy(bundle / name, folder / name)
    return folder


def test_a_bundle_and_its_record_are_the_same_base(golden_bundle: Path, tmp_path: Path
                                                   ) -> None:
    whole = read_base(golden_bundle)
    kept = read_base(record(golden_bundle, tmp_path / "record"))
    assert whole.identity == kept.identity == identity(
        (golden_bundle / "SHA512SUMS").read_bytes())
    assert whole.items == kept.items


def test_a_bundle_writes_its_own_target_files(golden_bundle: Path) -> None:
    text, sums = target_files(read_description(golden_bundle))
    assert text.encode() == (golden_bundle / "bundle.json").read_bytes()
    assert sums.encode() == (golden_bundle / "SHA512SUMS").read_bytes()


def test_a_delta_as_base_stands_for_the_bundle_it_makes(golden_bundle: Path,
                                                        tmp_path: Path) -> None:
    target = read_description(golden_bundle)
    base = read_base(golden_bundle)
    delta = mark(target, base, None, identity(target_files(target)[1].encode()))
    folder = tmp_path / "delta"
    folder.mkdir()
    delta.write(folder)
    digest = hashlib.sha512((folder / "bundle.json").read_bytes()).hexdigest()
    (folder / "SHA512SUMS").write_text(f"{digest}  bundle.json\n")
    read = read_base(folder)
    assert read.identity == base.identity, "the bundle it makes is the golden one again"
    assert [i.path for i in read.items] == [i.path for i in base.items]


@pytest.mark.parametrize(("damage", "message"), [
    ("sums line", "SHA512SUMS is damaged: SHA512SUMS line 1"),
    ("description", "bundle.json is not the one its SHA512SUMS lists"),
    ("disagree", "SHA512SUMS and bundle.json disagree on"),
    ("no sums", "cannot read its SHA512SUMS"),
])
def test_a_base_that_does_not_hold_together_is_refused(golden_bundle: Path, tmp_path: Path,
                                                      damage: str, message: str) -> None:
    folder = record(golden_bundle, tmp_path / "record")
    sums = folder / "SHA512SUMS"
    if damage == "sums line":
        sums.write_text("not a line\n" + sums.read_text())
    elif damage == "description":
        document = json.loads((folder / "bundle.json").read_text())
        document["notes"].append("edited")
        (folder / "bundle.json").write_text(json.dumps(document))
    elif damage == "disagree":
        lines = sums.read_text().splitlines()
        lines[-1] = "0" * 128 + lines[-1][128:]
        sums.write_text("\n".join(lines) + "\n")
    else:
        sums.unlink()
    with pytest.raises(BundleError, match=message):
        read_base(folder)
