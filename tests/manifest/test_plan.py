"""The plan: the exact files a fetch gets, why, and what it leaves out."""

from __future__ import annotations

from pathlib import Path

from airgap.manifest import parse_manifest
from airgap.manifest.plan import Plan, make_plan
from tests.terminal import at_terminal, in_pipe

HEADER = "apiVersion: airgap/v1\nkind: Bundle\nstack:\n  version: 9.0.0\n"

MULTI = HEADER + """\
platforms:
  os: [linux, windows]
  arch: [x86_64, arm64]
  formats: [archive, deb, rpm]
integrations: [system, fleet_server, endpoint, apm]
"""


def plan_of(body: str) -> Plan:
    return make_plan(parse_manifest(body, source="m.yaml", base_dir=Path("/")))


def test_multi_arch_windows_deb_rpm_plan_matches_elastic_file_names() -> None:
    plan = plan_of(MULTI)
    base = "https://artifacts.elastic.co/downloads/"
    agent = [a.url.removeprefix(base) for a in plan.artifacts if a.product == "elastic-agent"]
    assert agent == [
        "beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz",
        "beats/elastic-agent/elastic-agent-9.0.0-amd64.deb",
        "beats/elastic-agent/elastic-agent-9.0.0-x86_64.rpm",
        "beats/elastic-agent/elastic-agent-9.0.0-linux-arm64.tar.gz",
        "beats/elastic-agent/elastic-agent-9.0.0-arm64.deb",
        "beats/elastic-agent/elastic-agent-9.0.0-aarch64.rpm",
        "beats/elastic-agent/elastic-agent-9.0.0-windows-x86_64.zip",
    ]
    files = {a.path for a in plan.artifacts}
    assert "fleet-server/fleet-server-9.0.0-windows-x86_64.zip" in files
    assert "fleet-server/fleet-server-9.0.0-linux-arm64.tar.gz" in files
    assert "endpoint-dev/endpoint-security-9.0.0-linux-x86_64.tar.gz" in files
    assert "endpoint-dev/endpoint-security-9.0.0-windows-x86_64.zip" in files
    assert "apm-server/apm-server-9.0.0-arm64.deb" in files
    assert "apm-server/apm-server-9.0.0-aarch64.rpm" in files
    assert "beats/metricbeat/metricbeat-9.0.0-x86_64.rpm" in files
    assert "beats/filebeat/filebeat-9.0.0-windows-x86_64.zip" in files
    # Products without deb/rpm are not requested in those formats.
    assert not any(a.product in ("fleet-server", "endpoint-security") and a.format != "archive"
                   for a in plan.artifacts)
    # Windows never gets deb/rpm, and nothing is requested for windows/arm64.
    assert not any(a.os == "windows" and (a.format != "archive" or a.arch == "arm64")
                   for a in plan.artifacts)
    assert len(plan.artifacts) == len(files)
    for item in plan.artifacts:
        assert item.url == base + item.path
        assert item.bundle_path == f"downloads/{item.path}"
        data = item.to_dict()
        assert data["sha512_url"] == item.url + ".sha512"
        assert data["asc_url"] == item.url + ".asc"


def test_unavailable_products_are_skipped_with_a_note() -> None:
    plan = plan_of(MULTI)
    notes = "\n".join(plan.notes)
    assert "deb and rpm packages exist for linux only: not requested for windows" in notes
    assert "fleet-server, endpoint-security: published as archives only, no deb; left out " \
           "linux/x86_64 deb, linux/arm64 deb" in notes
    assert "not published for windows/arm64; left out windows/arm64 archive" in notes
    assert "elastic-agent: not published for windows/arm64 before 9.3.2; " \
           "left out windows/arm64 archive" in notes
    assert "fleet-server: not published for windows/arm64 before 9.5.0; " \
           "left out windows/arm64 archive" in notes
    cloud = plan_of(HEADER + "platforms: {os: [darwin], arch: [arm64]}\n"
                             "integrations: [cloud_security_posture, apm]\n")
    assert [a.product for a in cloud.artifacts] == ["elastic-agent"]
    assert cloud.notes == ("cloudbeat, apm-server: not published for darwin/arm64; "
                           "left out darwin/arm64 archive",)


def test_every_item_says_why() -> None:
    plan = plan_of(MULTI + "packages: true\n")
    reasons = {a.product: a.reasons for a in plan.artifacts}
    assert reasons["elastic-agent"] == ("every Fleet setup",)
    assert reasons["endpoint-security"] == ("integration endpoint",)
    assert reasons["fleet-server"] == ("integration fleet_server",)
    assert reasons["filebeat"] == ("integration system",)
    assert reasons["metricbeat"] == ("integration system",)
    assert [(p.name, p.reason) for p in plan.packages] == [
        ("system", "integration system"), ("fleet_server", "integration fleet_server"),
        ("endpoint", "integration endpoint"), ("apm", "integration apm")]
    assert plan.packages[0].search_url == \
        "https://epr.elastic.co/search?package=system&kibana.version=9.0.0&prerelease=false" \
        "&spec.min=2.3&spec.max=3.3"
    unlisted = plan_of(HEADER + "integrations: [nginx]\n")
    assert {a.product: a.reasons for a in unlisted.artifacts}["filebeat"] == \
        ("integration nginx (log and metrics inputs)",)


def test_image_reference_and_platforms() -> None:
    plan = plan_of(MULTI + "registry: {flavor: lite}\n"
                           "sources: {registry: 'http://127.0.0.1:5000'}\n")
    assert str(plan.image.reference) == \
        "docker.elastic.co/package-registry/distribution:lite-9.0.0"
    assert plan.image.reference.repository == "package-registry/distribution"
    assert plan.image.registry_url == "http://127.0.0.1:5000"
    assert plan.image.platforms == ("linux/amd64", "linux/arm64")


def test_explicit_products_fips_and_no_packages() -> None:
    plan = plan_of(HEADER.replace("9.0.0", "9.1.0") + "platforms: {arch: [x86_64, arm64]}\n"
                   "artifacts: {products: [elastic-agent, fleet-server, auditbeat], "
                   "fips: true}\nintegrations: [nginx]\npackages: false\n")
    assert [a.filename for a in plan.artifacts] == [
        "elastic-agent-fips-9.1.0-linux-x86_64.tar.gz",
        "elastic-agent-fips-9.1.0-linux-arm64.tar.gz",
        "fleet-server-fips-9.1.0-linux-x86_64.tar.gz",
        "fleet-server-fips-9.1.0-linux-arm64.tar.gz",
    ]
    assert {a.reasons for a in plan.artifacts} == {("artifacts.products",)}
    assert "auditbeat: no FIPS build for linux/x86_64; left out linux/x86_64 archive" \
        in plan.notes
    assert plan.packages == ()


def test_plan_json_shape() -> None:
    data = plan_of(MULTI).to_dict()
    assert set(data) == {"manifest", "stack_version", "image", "images", "artifacts",
                         "packages", "defend", "notes"}
    assert data["image"]["platforms"] == ["linux/amd64", "linux/arm64"]
    assert set(data["artifacts"][0]) == {"product", "os", "arch", "format", "fips", "path", "url",
                                         "sha512_url", "asc_url", "reasons"}


def test_a_tailored_plan_pulls_the_server_image_and_names_every_package_with_its_reason(
        ) -> None:
    from airgap import package_registry

    plan = plan_of(HEADER + "platforms: {arch: [x86_64, arm64]}\n"
                            "integrations: [nginx, system]\n"
                            "registry:\n  flavor: tailored\n"
                            "  packages: [kafka, nginx@1.20.0, apache]\n")
    assert str(plan.image.reference) == \
        f"docker.elastic.co/package-registry/package-registry:v{package_registry.PACKAGE_REGISTRY_VERSION}"
    assert plan.image.platforms == ("linux/amd64", "linux/arm64")
    assert "the base of the tailored registry" in plan.image.reason
    assert plan.tailored is not None
    assert str(plan.tailored.reference) == \
        "docker.elastic.co/package-registry/distribution:tailored-9.0.0"
    assert plan.tailored.package_path == "/packages/package-registry"
    assert [(p.label, p.reason) for p in plan.packages] == [
        ("nginx@1.20.0", "integration nginx; registry.packages (nginx@1.20.0)"),
        ("system", "integration system; Fleet installs it at setup"),
        ("elastic_agent", "Fleet installs it at setup"),
        ("fleet_server", "Fleet installs it at setup"),
        ("kafka", "registry.packages (kafka)"),
        ("apache", "registry.packages (apache)")]
    pinned = plan.packages[0]
    assert pinned.version == "1.20.0" and "&all=true" in pinned.search_url
    assert "&all=" not in plan.packages[1].search_url
    data = plan.to_dict()
    assert data["tailored"] == {
        "reference": "docker.elastic.co/package-registry/distribution:tailored-9.0.0",
        "base": str(plan.image.reference), "package_path": "/packages/package-registry"}


def test_all_versions_asks_for_every_compatible_version_except_of_a_pinned_package() -> None:
    plan = plan_of(HEADER + "registry:\n  flavor: tailored\n  all_versions: true\n"
                            "  base: mirror.corp/epr/server:v2\n  packages: [beta@0.3.0-rc.1]\n")
    assert str(plan.image.reference) == "mirror.corp/epr/server:v2"
    assert plan.image.reason == "registry.base, the base of the tailored registry"
    every = {p.name: p for p in plan.packages}
    assert every["system"].all_versions and every["system"].label == \
        "system (every compatible version)"
    assert every["system"].search_url.endswith("&all=true")
    assert not every["beta"].all_versions and every["beta"].version == "0.3.0-rc.1"
    assert "prerelease=true" in every["beta"].search_url  # a pinned pre-release is asked for


def test_lite_and_full_plans_are_not_tailored() -> None:
    plan = plan_of(MULTI)
    assert plan.tailored is None and "tailored" not in plan.to_dict()


def test_installers_and_image_tarballs_go_to_their_one_os() -> None:
    plan = plan_of(HEADER + "platforms: {os: [linux, windows], arch: [x86_64, arm64], "
                            "formats: [archive, msi, docker-image]}\n"
                            "artifacts: {products: [elastic-agent, fleet-server]}\n")
    files = {a.filename for a in plan.artifacts}
    assert {"elastic-agent-9.0.0-windows-x86_64.msi",
            "elastic-agent-9.0.0-docker-image-linux-amd64.tar.gz",
            "elastic-agent-9.0.0-docker-image-linux-arm64.tar.gz"} <= files
    assert not any(name.endswith(".msi") and "arm64" in name for name in files)
    assert not any(a.product == "fleet-server" and a.format != "archive"
                   for a in plan.artifacts)
    notes = "\n".join(plan.notes)
    assert "msi packages exist for windows only: not requested for linux" in notes
    assert "docker-image packages exist for linux only: not requested for windows" in notes


def test_darwin_universal_builds_where_published() -> None:
    plan = plan_of(HEADER + "platforms: {os: [darwin], arch: [arm64]}\n"
                            "integrations: [endpoint]\n"
                            "artifacts: {darwin_universal: true}\n")
    assert [a.filename for a in plan.artifacts] == [
        "elastic-agent-9.0.0-darwin-aarch64.tar.gz",
        "endpoint-security-9.0.0-darwin-aarch64.tar.gz",
        "endpoint-security-9.0.0-darwin-universal.tar.gz"]
    assert plan.notes == ()


def test_defend_artifacts_follow_the_endpoint_integration() -> None:
    plan = plan_of(HEADER + "integrations: [endpoint]\n")
    assert [(d.endpoint_version, d.url, d.bundle_path) for d in plan.defend] == [(
        "9.0.0",
        "https://artifacts.security.elastic.co/downloads/endpoint/manifest/artifacts-9.0.0.zip",
        "security/downloads/endpoint/manifest/artifacts-9.0.0.zip")]
    assert "integration endpoint" in plan.defend[0].reason
    assert plan_of(HEADER + "integrations: [nginx]\n").defend == ()
    chosen = plan_of(HEADER + "integrations: [endpoint]\n"
                              "security: {endpoint_artifacts: [8.19.3, 9.0.1]}\n"
                              "sources: {security: 'http://127.0.0.1:9/mirror/'}\n")
    assert [d.url for d in chosen.defend] == [
        "http://127.0.0.1:9/mirror/downloads/endpoint/manifest/artifacts-8.19.3.zip",
        "http://127.0.0.1:9/mirror/downloads/endpoint/manifest/artifacts-9.0.1.zip"]
    assert {d.reason for d in chosen.defend} == {"security.endpoint_artifacts"}
    off = plan_of(HEADER + "integrations: [endpoint]\nsecurity: {endpoint_artifacts: false}\n")
    assert off.defend == ()
    stack = plan_of(HEADER + "security: {endpoint_artifacts: true}\n")
    assert [d.endpoint_version for d in stack.defend] == ["9.0.0"]


def test_more_images_by_known_name_or_repository() -> None:
    plan = plan_of(HEADER + "platforms: {arch: [x86_64, arm64]}\n"
                            "sources: {registry: 'http://127.0.0.1:5000'}\n"
                            "images:\n"
                            "  - elastic-agent\n"
                            "  - {name: elastic-agent-complete, tag: 9.0.1, "
                            "platforms: [linux/amd64]}\n"
                            "  - {name: registry.corp:5000/tools/busybox, tag: '1.36'}\n")
    assert [(str(i.reference), i.registry_url, i.platforms) for i in plan.images] == [
        ("docker.elastic.co/elastic-agent/elastic-agent:9.0.0", "http://127.0.0.1:5000",
         ("linux/amd64", "linux/arm64")),
        ("docker.elastic.co/elastic-agent/elastic-agent-complete:9.0.1",
         "http://127.0.0.1:5000", ("linux/amd64",)),
        ("registry.corp:5000/tools/busybox:1.36", "https://registry.corp:5000",
         ("linux/amd64", "linux/arm64")),
    ]
    assert plan.images[0].reason == "images[0] (elastic-agent), the stack version 9.0.0"
    assert plan.to_dict()["images"][1]["tag"] == "9.0.1"


def test_an_image_given_twice_is_a_manifest_error_naming_its_line(tmp_path: Path) -> None:
    manifest = tmp_path / "dup.yaml"
    manifest.write_text(HEADER + "images:\n"
                                 "  - elastic-agent\n"
                                 "  - {name: docker.elastic.co/package-registry/distribution,"
                                 " tag: '9.0.0'}\n")
    line = HEADER.count("\n") + 3
    expected = (f"{manifest}:{line}: images[1]: docker.elastic.co/package-registry/"
                "distribution:9.0.0 is already in the bundle (as registry)")
    piped = in_pipe("plan", str(manifest))
    assert piped.returncode == 2, piped.stderr
    assert expected in piped.stderr
    seen = at_terminal("plan", str(manifest))
    assert seen.code == 2, seen.text
    assert expected in " ".join(seen.text.split())
