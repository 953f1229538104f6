"""Every file the plan can name is one Elastic published, and every file Elastic published
for airgap's products can be planned: checked against Elastic's real release manifest of
8.14.0 (tests/fixtures/release-manifest-8.14.0.json)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from airgap import elastic
from airgap.manifest import parse_manifest
from airgap.manifest.plan import make_plan

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "release-manifest-8.14.0.json"
VERSION = "8.14.0"
# A published name: product, an optional -fips, the version (the agent's carries a
# +build suffix in the manifest, not on artifacts.elastic.co), then the suffix. Variants
# with another word after the product (-oss, -ubi, -cloud, -complete, -ironbank, -core)
# are other products: the container variants come as images (`images`), not as tarballs.
PRODUCTS = "|".join(sorted(map(re.escape, elastic.PRODUCTS), key=len, reverse=True))
NAME = re.compile(rf"^(?P<product>{PRODUCTS})(?P<fips>-fips)?-(?P<version>\d+\.\d+\.\d+)"
                  r"(?:\+build\d+)?-(?P<suffix>.+)\Z")


def published() -> dict[str, str]:
    """Each published file of airgap's products by its name on artifacts.elastic.co
    (version and all), with the directory it is published in below downloads/."""
    document = json.loads(FIXTURE.read_text())
    found = {}
    for project in document["projects"].values():
        for name, package in project.get("packages", {}).items():
            match = NAME.match(name)
            if match is None:
                continue
            url = package["url"]
            directory = url.split("/downloads/", 1)[1].rsplit("/", 1)[0]
            key = f"{match['product']}{match['fips'] or ''}-{match['version']}-{match['suffix']}"
            found[key] = directory
    return found


def published_versions() -> dict[str, str]:
    """The version the release manifest shows for each of airgap's products (this one
    ships endpoint-security 8.14.1 with the agent 8.14.0)."""
    versions: dict[str, set[str]] = {}
    for name in published():
        match = NAME.match(name)
        assert match is not None
        versions.setdefault(match["product"], set()).add(match["version"])
    assert all(len(v) == 1 for v in versions.values()), versions
    return {product: v.pop() for product, v in versions.items()}


def plan_everything(version: str, fips: bool,
                    products: Sequence[str] = tuple(elastic.PRODUCTS)) -> dict[str, str]:
    """Every platform and format of ``products`` at ``version``: name -> directory."""
    text = f"""\
apiVersion: airgap/v1
kind: Bundle
stack: {{version: "{version}"}}
platforms:
  os: [{', '.join(elastic.OS_NAMES)}]
  arch: [{', '.join(elastic.ARCH_NAMES)}]
  formats: [{', '.join(elastic.FORMATS)}]
artifacts:
  products: [{', '.join(products)}]
  fips: {str(fips).lower()}
  darwin_universal: true
packages: false
"""
    plan = make_plan(parse_manifest(text, source="everything.yaml", base_dir=Path("/")))
    return {item.filename: item.path.rsplit("/", 1)[0] for item in plan.artifacts}


def plan_as_released(fips: bool) -> dict[str, str]:
    """Each product planned at the version the release manifest shows for it."""
    planned: dict[str, str] = {}
    for product, version in published_versions().items():
        planned.update(plan_everything(version, fips, [product]))
    return planned


def test_the_fixture_is_elastics_8_14_release_manifest() -> None:
    document = json.loads(FIXTURE.read_text())
    assert document["version"].startswith("8.14.0")
    assert len(published()) > 100
    assert set(published_versions()) == set(elastic.PRODUCTS)
    assert published_versions()["endpoint-security"] == "8.14.1"


def test_every_planned_name_is_published_in_its_directory() -> None:
    names = published()
    planned = {**plan_as_released(fips=False), **plan_as_released(fips=True)}
    unpublished = sorted(name for name in planned if name not in names)
    assert unpublished == [], f"planned but not published: {unpublished}"
    wrong = sorted(n for n, d in planned.items() if names[n] != d)
    assert wrong == []


def test_every_published_name_of_airgaps_products_can_be_planned() -> None:
    planned = plan_as_released(fips=False)
    missing = sorted(name for name in published() if name not in planned)
    assert missing == [], f"published but never planned: {missing}"


def test_the_version_is_part_of_the_comparison() -> None:
    # The stack's 8.14.0 names of endpoint-security are not in this manifest (8.14.1 is).
    planned = plan_everything(VERSION, fips=False, products=["endpoint-security"])
    assert planned and not set(planned) & set(published())


def test_the_formats_each_kind_of_file_comes_from() -> None:
    planned = plan_everything(VERSION, fips=False)
    for name in ("elastic-agent-{v}-windows-x86_64.msi", "filebeat-{v}-windows-x86_64.msi",
                 "elastic-agent-{v}-docker-image-linux-arm64.tar.gz",
                 "apm-server-{v}-docker-image.tar.gz", "apm-server-{v}-docker-image-arm64.tar.gz",
                 "pf-host-agent-{v}-amd64.deb", "pf-elastic-symbolizer-{v}-aarch64.rpm",
                 "endpoint-security-{v}-darwin-universal.tar.gz"):
        assert name.format(v=VERSION) in planned


@pytest.mark.parametrize(("version", "present", "absent"), [
    ("8.14.0", [], ["elastic-agent-fips-{v}-linux-x86_64.tar.gz",
                    "filebeat-fips-{v}-linux-x86_64.tar.gz",
                    "elastic-agent-{v}-windows-arm64.zip"]),
    ("9.1.0", ["elastic-agent-fips-{v}-linux-x86_64.tar.gz",
               "fleet-server-fips-{v}-linux-arm64.tar.gz",
               "apm-server-fips-{v}-linux-x86_64.tar.gz",
               "filebeat-fips-{v}-linux-x86_64.tar.gz", "metricbeat-fips-{v}-linux-arm64.tar.gz"],
     ["elastic-agent-fips-{v}-windows-x86_64.zip", "elastic-agent-{v}-windows-arm64.zip",
      "auditbeat-fips-{v}-linux-x86_64.tar.gz", "filebeat-fips-{v}-windows-x86_64.zip",
      "filebeat-fips-{v}-amd64.deb"]),
    ("8.19.0", ["elastic-agent-fips-{v}-linux-arm64.tar.gz",
                "filebeat-fips-{v}-linux-arm64.tar.gz"], []),
    # Windows on ARM: the agent from 9.3.2 (technical preview), fleet-server from 9.5.0,
    # and no standalone endpoint-security zip that a source shows.
    ("9.3.0", [], ["elastic-agent-{v}-windows-arm64.zip",
                   "endpoint-security-{v}-windows-arm64.zip"]),
    ("9.3.2", ["elastic-agent-{v}-windows-arm64.zip"],
     ["endpoint-security-{v}-windows-arm64.zip", "fleet-server-{v}-windows-arm64.zip",
      "filebeat-{v}-windows-arm64.zip", "elastic-agent-{v}-windows-arm64.msi",
      "elastic-agent-fips-{v}-windows-arm64.zip"]),
    ("9.5.0", ["elastic-agent-fips-{v}-windows-x86_64.zip",
               "elastic-agent-fips-{v}-windows-arm64.zip", "fleet-server-{v}-windows-arm64.zip"],
     ["fleet-server-fips-{v}-windows-x86_64.zip", "fleet-server-fips-{v}-windows-arm64.zip",
      "endpoint-security-{v}-windows-arm64.zip"]),
])
def test_version_gates(version: str, present: list[str], absent: list[str]) -> None:
    planned = {**plan_everything(version, fips=False), **plan_everything(version, fips=True)}
    assert [n for n in present if n.format(v=version) not in planned] == []
    assert [n for n in absent if n.format(v=version) in planned] == []


def test_a_gate_not_met_is_a_note() -> None:
    text = """\
apiVersion: airgap/v1
kind: Bundle
stack: {version: "9.3.1"}
platforms: {os: [windows], arch: [arm64]}
artifacts: {products: [elastic-agent, fleet-server, endpoint-security]}
packages: false
"""
    plan = make_plan(parse_manifest(text, source="m.yaml", base_dir=Path("/")))
    assert plan.artifacts == ()
    assert "elastic-agent: not published for windows/arm64 before 9.3.2; left out " \
           "windows/arm64 archive" in plan.notes
    assert "fleet-server: not published for windows/arm64 before 9.5.0; left out " \
           "windows/arm64 archive" in plan.notes
    assert "endpoint-security: not published for windows/arm64; left out windows/arm64 " \
           "archive" in plan.notes


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
