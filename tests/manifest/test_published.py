"""Every file the plan can name is one Elastic published, and every file Elastic published
for airgap's products can be planned: checked against Elastic's real release manifest of
8.14.0 (tests/fixtures/release-manifest-8.14.0.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from airgap import elastic
from airgap.manifest import parse_manifest
from airgap.manifest.plan import make_plan

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "release-manifest-8.14.0.json"
VERSION = "8.14.0"
# A published name: product, an optional -fips, the version (the agent's carries a
# +build suffix in the manifest, not on artifacts.elastic.co; endpoint-security ships
# 8.14.1 with the 8.14 release), then the suffix. Variants with another word after the
# product (-oss, -ubi, -cloud, -complete, -ironbank, -core) are other products: the
# container variants come as images (`images`), not as tarballs.
PRODUCTS = "|".join(sorted(map(re.escape, elastic.PRODUCTS), key=len, reverse=True))
NAME = re.compile(rf"^(?P<product>{PRODUCTS})(?P<fips>-fips)?-(?P<version>\d+\.\d+\.\d+)"
                  r"(?:\+build\d+)?-(?P<suffix>.+)\Z")


def published() -> dict[str, str]:
    """Each published file of airgap's products, as ``<product>-{v}-<suffix>``, with the
    directory it is published in below downloads/."""
    document = json.loads(FIXTURE.read_text())
    found = {}
    for project in document["projects"].values():
        for name, package in project.get("packages", {}).items():
            match = NAME.match(name)
            if match is None:
                continue
            url = package["url"]
            directory = url.split("/downloads/", 1)[1].rsplit("/", 1)[0]
            key = f"{match['product']}{match['fips'] or ''}-{{v}}-{match['suffix']}"
            found[key] = directory
    return found


def plan_everything(version: str, fips: bool) -> dict[str, str]:
    """Every product, every platform and format: name (version as ``{v}``) -> directory."""
    text = f"""\
apiVersion: airgap/v1
kind: Bundle
stack: {{version: "{version}"}}
platforms:
  os: [{', '.join(elastic.OS_NAMES)}]
  arch: [{', '.join(elastic.ARCH_NAMES)}]
  formats: [{', '.join(elastic.FORMATS)}]
artifacts:
  products: [{', '.join(elastic.PRODUCTS)}]
  fips: {str(fips).lower()}
  darwin_universal: true
packages: false
"""
    plan = make_plan(parse_manifest(text, source="everything.yaml", base_dir=Path("/")))
    return {item.filename.replace(version, "{v}", 1): item.path.rsplit("/", 1)[0]
            for item in plan.artifacts}


def test_the_fixture_is_elastics_8_14_release_manifest() -> None:
    document = json.loads(FIXTURE.read_text())
    assert document["version"].startswith("8.14.0")
    assert len(published()) > 100


def test_every_planned_name_is_published_in_its_directory() -> None:
    names = published()
    planned = {**plan_everything(VERSION, fips=False), **plan_everything(VERSION, fips=True)}
    unpublished = sorted(name for name in planned if name not in names)
    assert unpublished == [], f"planned but not published for {VERSION}: {unpublished}"
    wrong = sorted(n for n, d in planned.items() if names[n] != d)
    assert wrong == []


def test_every_published_name_of_airgaps_products_can_be_planned() -> None:
    planned = plan_everything(VERSION, fips=False)
    missing = sorted(name for name in published() if name not in planned)
    assert missing == [], f"published for {VERSION} but never planned: {missing}"


def test_the_formats_each_kind_of_file_comes_from() -> None:
    planned = plan_everything(VERSION, fips=False)
    for name in ("elastic-agent-{v}-windows-x86_64.msi", "filebeat-{v}-windows-x86_64.msi",
                 "elastic-agent-{v}-docker-image-linux-arm64.tar.gz",
                 "apm-server-{v}-docker-image.tar.gz", "apm-server-{v}-docker-image-arm64.tar.gz",
                 "pf-host-agent-{v}-amd64.deb", "pf-elastic-symbolizer-{v}-aarch64.rpm",
                 "endpoint-security-{v}-darwin-universal.tar.gz"):
        assert name in planned


@pytest.mark.parametrize(("version", "present", "absent"), [
    ("8.14.0", [], ["elastic-agent-fips-{v}-linux-x86_64.tar.gz",
                    "elastic-agent-{v}-windows-arm64.zip"]),
    ("9.1.0", ["elastic-agent-fips-{v}-linux-x86_64.tar.gz",
               "fleet-server-fips-{v}-linux-arm64.tar.gz",
               "apm-server-fips-{v}-linux-x86_64.tar.gz"],
     ["elastic-agent-fips-{v}-windows-x86_64.zip", "elastic-agent-{v}-windows-arm64.zip"]),
    ("8.19.0", ["elastic-agent-fips-{v}-linux-arm64.tar.gz"], []),
    ("9.3.0", ["elastic-agent-{v}-windows-arm64.zip", "endpoint-security-{v}-windows-arm64.zip"],
     ["filebeat-{v}-windows-arm64.zip", "elastic-agent-{v}-windows-arm64.msi"]),
    ("9.5.0", ["elastic-agent-fips-{v}-windows-x86_64.zip"],
     ["fleet-server-fips-{v}-windows-x86_64.zip"]),
])
def test_version_gates(version: str, present: list[str], absent: list[str]) -> None:
    planned = {**plan_everything(version, fips=False), **plan_everything(version, fips=True)}
    assert [n for n in present if n not in planned] == []
    assert [n for n in absent if n in planned] == []


def test_fips_at_8_14_plans_nothing_and_says_why() -> None:
    text = """\
apiVersion: airgap/v1
kind: Bundle
stack: {version: "8.14.0"}
artifacts: {products: [elastic-agent, fleet-server], fips: true}
packages: false
"""
    plan = make_plan(parse_manifest(text, source="m.yaml", base_dir=Path("/")))
    assert plan.artifacts == ()
    assert "elastic-agent, fleet-server: no FIPS build for linux/x86_64 before 9.1.0; " \
           "left out linux/x86_64 archive" in plan.notes
