"""bundle.json as a typed model: read with every field checked, written back the same."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from airgap.bundle.description import BundleDescription, DescriptionError, read_description
from airgap.errors import BundleError, DamagedBundleError, ExitCode


@pytest.fixture
def document(golden_bundle: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((golden_bundle / "bundle.json").read_text())
    return loaded


def test_a_fetched_description_reads_and_writes_back_byte_for_byte(
        golden_bundle: Path, tmp_path: Path) -> None:
    description = read_description(golden_bundle)
    assert description.image.reference.endswith("package-registry/distribution:9.0.0")
    assert {i.kind for i in description.items} >= {"artifact", "package", "key", "image-layer"}
    description.write(tmp_path)
    assert (tmp_path / "bundle.json").read_bytes() == (golden_bundle / "bundle.json").read_bytes()


def damage(document: dict[str, Any], change: str) -> dict[str, Any]:
    """``document`` with one thing wrong, as ``change`` says."""
    damaged = copy.deepcopy(document)
    if change == "item size":
        damaged["items"][2]["size"] = "big"
    elif change == "item sha512":
        damaged["items"][0]["sha512"] = "0" * 127
    elif change == "item kind":
        damaged["items"][1]["kind"] = "trojan"
    elif change == "unknown field":
        damaged["image"]["pulled_by"] = "someone"
    elif change == "missing field":
        del damaged["keys"][0]["fingerprint"]
    elif change == "verification value":
        damaged["items"][3]["verification"]["signer"] = 7
    elif change == "format":
        damaged["format"] = 4
    elif change == "layers":
        next(iter(damaged["image"]["platforms"].values()))["layers"] = "sha256:x"
    return damaged


@pytest.mark.parametrize(("change", "where"), [
    ("item size", "items[2].size"), ("item sha512", "items[0].sha512"),
    ("item kind", "items[1].kind"), ("unknown field", "image.pulled_by"),
    ("missing field", "keys[0].fingerprint"), ("verification value",
                                               "items[3].verification.signer"),
    ("format", "format"), ("layers", "layers"),
])
def test_a_damaged_field_is_named(document: dict[str, Any], change: str, where: str) -> None:
    with pytest.raises(DescriptionError) as refused:
        BundleDescription.from_dict(damage(document, change))
    assert where in refused.value.field


def test_a_damaged_file_says_so_and_points_at_verify(golden_bundle: Path, tmp_path: Path,
                                                    document: dict[str, Any]) -> None:
    (tmp_path / "bundle.json").write_text(json.dumps(damage(document, "item size")))
    with pytest.raises(BundleError, match=r"bundle.json is damaged: items\[2\].size") as error:
        read_description(tmp_path)
    assert "airgap verify" in str(error.value)
    (tmp_path / "bundle.json").write_text("[" * 50 + "]" * 50)
    with pytest.raises(BundleError, match="damaged: expected an object"):
        read_description(tmp_path)


def test_format_1_bundles_still_read_and_keep_to_their_fields(document: dict[str, Any]
                                                              ) -> None:
    older = copy.deepcopy(document)
    assert older["format"] == 2 and older["images"] == [] and older["defend"] == []
    del older["images"], older["defend"]
    older["format"] = 1
    description = BundleDescription.from_dict(older)
    assert description.format == 1 and description.images == () and description.defend == ()
    assert description.to_dict() == older  # written back as it was
    older["defend"] = []
    with pytest.raises(DescriptionError, match="not a field of this bundle format") as refused:
        BundleDescription.from_dict(older)
    assert refused.value.field == "defend"


def test_format_2_records_images_and_defend_manifests(rich_bundle: Path) -> None:
    description = read_description(rich_bundle)
    assert [i.reference for i in description.all_images] == [
        "docker.elastic.co/package-registry/distribution:9.0.0",
        "docker.elastic.co/elastic-agent/elastic-agent:9.0.0"]
    [defend] = description.defend
    assert defend.manifest_version == "1.0.137" and defend.fetched.endswith("Z")
    broken = json.loads((rich_bundle / "bundle.json").read_text())
    broken["defend"][0]["fetched"] = "yesterday"
    with pytest.raises(DescriptionError) as refused:
        BundleDescription.from_dict(broken)
    assert refused.value.field == "defend[0].fetched"


def test_a_tailored_image_is_an_optional_field_of_format_2_only(tailored_bundle: Path,
                                                                tmp_path: Path) -> None:
    description = read_description(tailored_bundle)
    assert description.format == 2 and description.image.tailored is not None
    assert description.image.tailored.packages and description.images == ()
    description.write(tmp_path)
    assert (tmp_path / "bundle.json").read_bytes() == \
        (tailored_bundle / "bundle.json").read_bytes()
    document = json.loads((tailored_bundle / "bundle.json").read_text())
    incomplete = copy.deepcopy(document)
    del incomplete["image"]["tailored"]["diff_id"]
    with pytest.raises(DescriptionError) as refused:
        BundleDescription.from_dict(incomplete)
    assert refused.value.field == "image.tailored.diff_id"
    older = copy.deepcopy(document)  # format 1 had no tailored registries
    del older["images"], older["defend"]
    older["format"] = 1
    with pytest.raises(DescriptionError, match="not a field of this bundle format") as refused:
        BundleDescription.from_dict(older)
    assert refused.value.field == "image.tailored"
    another = copy.deepcopy(document)  # only the registry's image is ever tailored
    another["images"] = [copy.deepcopy(document["image"])]
    with pytest.raises(DescriptionError) as refused:
        BundleDescription.from_dict(another)
    assert refused.value.field == "images[0].tailored"


@pytest.mark.parametrize(("content", "said"), [
    ("[" * 100_000 + "]" * 100_000, "nested deeper than the 64 levels"),
    ("{\"format\": 1," + " " * (64 << 20), "larger than the"),
    ("\x00garbage", "not valid JSON"),
])
def test_a_hostile_description_is_a_damaged_bundle(tmp_path: Path, content: str,
                                                   said: str) -> None:
    (tmp_path / "bundle.json").write_text(content)
    with pytest.raises(DamagedBundleError, match=said) as error:
        read_description(tmp_path)
    assert error.value.exit_code == ExitCode.VERIFICATION


def test_a_delta_is_format_3_and_each_of_its_files_says_where_it_is(
        document: dict[str, Any], tmp_path: Path) -> None:
    """Format 3 is format 2 and ``delta`` and each item's ``origin``: an airgap that knows
    only formats 1 and 2 refuses a delta rather than take it for a whole bundle."""
    delta = copy.deepcopy(document)
    assert delta["format"] == 2
    delta["format"] = 3
    delta["delta"] = {"base": "a" * 128, "target": "b" * 128, "target_signature": None}
    for number, item in enumerate(delta["items"]):
        item["origin"] = "base" if number % 2 else "carried"
    read = BundleDescription.from_dict(delta)
    assert read.delta is not None and read.delta.base == "a" * 128
    assert {i.origin for i in read.items} == {"base", "carried"}
    read.write(tmp_path)
    assert json.loads((tmp_path / "bundle.json").read_text()) == delta

    for change, where, problem in [
            (lambda d: d.pop("delta"), "delta", "missing"),
            (lambda d: d["items"][0].pop("origin"), "items[0].origin", "missing"),
            (lambda d: d["items"][1].update(origin="elsewhere"), "items[1].origin",
             "is not one of carried, base"),
            (lambda d: d["delta"].update(base="nope"), "delta.base", "not a SHA-512")]:
        damaged = copy.deepcopy(delta)
        change(damaged)
        with pytest.raises(DescriptionError, match=problem) as caught:
            BundleDescription.from_dict(damaged)
        assert caught.value.field == where

    full = copy.deepcopy(document)
    full["items"][0]["origin"] = "carried"
    with pytest.raises(DescriptionError, match="not a field of format 2"):
        BundleDescription.from_dict(full)
    full = copy.deepcopy(document)
    full["delta"] = delta["delta"]
    with pytest.raises(DescriptionError, match="not a field of this bundle format"):
        BundleDescription.from_dict(full)
