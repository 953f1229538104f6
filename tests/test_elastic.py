"""Elastic's layout: file names exactly as artifacts.elastic.co spells them."""

from __future__ import annotations

import pytest

from airgap import elastic

AGENT = elastic.PRODUCTS["elastic-agent"]


@pytest.mark.parametrize(("os", "arch", "fmt", "name"), [
    ("linux", "x86_64", "archive", "elastic-agent-9.0.0-linux-x86_64.tar.gz"),
    ("linux", "arm64", "archive", "elastic-agent-9.0.0-linux-arm64.tar.gz"),
    ("windows", "x86_64", "archive", "elastic-agent-9.0.0-windows-x86_64.zip"),
    ("darwin", "x86_64", "archive", "elastic-agent-9.0.0-darwin-x86_64.tar.gz"),
    ("darwin", "arm64", "archive", "elastic-agent-9.0.0-darwin-aarch64.tar.gz"),
    ("linux", "x86_64", "deb", "elastic-agent-9.0.0-amd64.deb"),
    ("linux", "arm64", "deb", "elastic-agent-9.0.0-arm64.deb"),
    ("linux", "x86_64", "rpm", "elastic-agent-9.0.0-x86_64.rpm"),
    ("linux", "arm64", "rpm", "elastic-agent-9.0.0-aarch64.rpm"),
])
def test_file_names_per_platform_and_format(os: str, arch: str, fmt: str, name: str) -> None:
    assert elastic.artifact_filename(AGENT, "9.0.0", os, arch, fmt, False) == name


def test_fips_names_insert_fips_after_the_product() -> None:
    assert elastic.artifact_filename(AGENT, "9.1.0", "linux", "arm64", "archive", True) == \
        "elastic-agent-fips-9.1.0-linux-arm64.tar.gz"


@pytest.mark.parametrize(("product", "directory"), [
    ("elastic-agent", "beats/elastic-agent"), ("filebeat", "beats/filebeat"),
    ("metricbeat", "beats/metricbeat"), ("auditbeat", "beats/auditbeat"),
    ("heartbeat", "beats/heartbeat"), ("packetbeat", "beats/packetbeat"),
    ("osquerybeat", "beats/osquerybeat"), ("apm-server", "apm-server"),
    ("cloudbeat", "cloudbeat"), ("fleet-server", "fleet-server"),
    ("endpoint-security", "endpoint-dev"), ("pf-host-agent", "prodfiler"),
    ("pf-elastic-collector", "prodfiler"), ("pf-elastic-symbolizer", "prodfiler"),
])
def test_product_directories(product: str, directory: str) -> None:
    assert elastic.PRODUCTS[product].directory == directory


@pytest.mark.parametrize(("product", "os", "arch", "fmt", "fips", "reason"), [
    ("apm-server", "darwin", "arm64", "archive", False, "not published for darwin/arm64"),
    ("cloudbeat", "windows", "x86_64", "archive", False, "not published for windows/x86_64"),
    ("pf-host-agent", "darwin", "x86_64", "archive", False, "not published for darwin/x86_64"),
    ("elastic-agent", "windows", "arm64", "archive", False,
     "not published for windows/arm64 before 9.3.2"),
    ("fleet-server", "windows", "arm64", "archive", False,
     "not published for windows/arm64 before 9.5.0"),
    ("endpoint-security", "windows", "arm64", "archive", False,
     "not published for windows/arm64"),
    ("filebeat", "windows", "arm64", "archive", False, "not published for windows/arm64"),
    ("fleet-server", "linux", "x86_64", "deb", False, "published as archives only, no deb"),
    ("osquerybeat", "windows", "x86_64", "msi", False, "published as archives only, no msi"),
    ("pf-host-agent", "linux", "x86_64", "docker-image", False,
     "not published as docker-image"),
    ("filebeat", "linux", "x86_64", "msi", False, "msi packages exist for windows only"),
    ("filebeat", "windows", "x86_64", "docker-image", False,
     "docker-image packages exist for linux only"),
    ("filebeat", "darwin", "universal", "archive", False, "no universal build"),
    ("filebeat", "linux", "x86_64", "archive", True,
     "no FIPS build for linux/x86_64 before 9.1.0"),
    ("auditbeat", "linux", "x86_64", "archive", True, "no FIPS build for linux/x86_64"),
    ("elastic-agent", "linux", "x86_64", "rpm", True, "FIPS builds are archives only, no rpm"),
    ("elastic-agent", "windows", "x86_64", "archive", True,
     "no FIPS build for windows/x86_64 before 9.5.0"),
    ("fleet-server", "windows", "x86_64", "archive", True, "no FIPS build for windows/x86_64"),
    ("elastic-agent", "linux", "arm64", "archive", True,
     "no FIPS build for linux/arm64 before 9.1.0"),
])
def test_unavailable_combinations_say_why(product: str, os: str, arch: str, fmt: str,
                                          fips: bool, reason: str) -> None:
    assert elastic.unavailable_reason(elastic.PRODUCTS[product], os, arch, fmt, fips,
                                      "9.0.0") == reason


@pytest.mark.parametrize(("product", "os", "arch", "fmt", "fips", "version"), [
    ("apm-server", "windows", "x86_64", "archive", False, "9.0.0"),
    ("endpoint-security", "darwin", "arm64", "archive", False, "9.0.0"),
    ("endpoint-security", "darwin", "universal", "archive", False, "8.14.0"),
    ("fleet-server", "linux", "arm64", "archive", True, "9.1.0"),
    ("fleet-server", "linux", "arm64", "archive", True, "8.19.2"),
    ("elastic-agent", "linux", "x86_64", "deb", False, "9.0.0"),
    ("elastic-agent", "windows", "x86_64", "msi", False, "8.14.0"),
    ("elastic-agent", "windows", "arm64", "archive", False, "9.3.2"),
    ("fleet-server", "windows", "arm64", "archive", False, "9.5.0"),
    ("filebeat", "linux", "arm64", "archive", True, "9.1.0"),
    ("metricbeat", "linux", "x86_64", "archive", True, "8.19.0"),
    ("elastic-agent", "windows", "arm64", "archive", True, "9.5.0"),
    ("elastic-agent", "windows", "x86_64", "archive", True, "9.5.0"),
    ("apm-server", "linux", "arm64", "rpm", False, "9.0.0"),
    ("apm-server", "linux", "arm64", "docker-image", False, "8.14.0"),
    ("pf-host-agent", "linux", "arm64", "deb", False, "8.14.0"),
])
def test_available_combinations(product: str, os: str, arch: str, fmt: str, fips: bool,
                                version: str) -> None:
    assert elastic.unavailable_reason(elastic.PRODUCTS[product], os, arch, fmt, fips,
                                      version) is None


@pytest.mark.parametrize(("product", "arch", "fmt", "name"), [
    ("elastic-agent", "x86_64", "msi", "elastic-agent-8.14.0-windows-x86_64.msi"),
    ("metricbeat", "arm64", "docker-image",
     "metricbeat-8.14.0-docker-image-linux-arm64.tar.gz"),
    ("apm-server", "x86_64", "docker-image", "apm-server-8.14.0-docker-image.tar.gz"),
    ("apm-server", "arm64", "docker-image", "apm-server-8.14.0-docker-image-arm64.tar.gz"),
    ("endpoint-security", "universal", "archive",
     "endpoint-security-8.14.0-darwin-universal.tar.gz"),
])
def test_names_of_installers_images_and_universal_builds(product: str, arch: str, fmt: str,
                                                        name: str) -> None:
    os = {"msi": "windows", "docker-image": "linux"}.get(fmt, "darwin")
    assert elastic.artifact_filename(elastic.PRODUCTS[product], "8.14.0", os, arch, fmt,
                                     False) == name


def test_kibana_settings_by_version() -> None:
    assert not elastic.kibana_knows("xpack.fleet.isAirGapped", "8.12.2")
    assert elastic.kibana_knows("xpack.fleet.isAirGapped", "8.13.0")
    assert not elastic.kibana_knows("xpack.fleet.binaryDownloadSource", "9.5.3")
    assert elastic.kibana_knows("xpack.fleet.binaryDownloadSource", "9.6.0")
    assert elastic.kibana_knows("xpack.fleet.registryUrl", "8.0.0")


def test_defend_layout() -> None:
    assert elastic.defend_manifest_path("9.0.0") == \
        "downloads/endpoint/manifest/artifacts-9.0.0.zip"
    assert elastic.is_defend_manifest_path("downloads/endpoint/manifest/artifacts-8.14.1.zip")
    assert not elastic.is_defend_manifest_path("downloads/endpoint/artifacts/x/artifacts-1.zip")


def test_integration_table_from_facts() -> None:
    expected = {
        "endpoint": ("endpoint-security",), "cloud_security_posture": ("cloudbeat",),
        "cloud_asset_inventory": ("cloudbeat",), "apm": ("apm-server",),
        "fleet_server": ("fleet-server",), "profiler_agent": ("pf-host-agent",),
        "profiler_collector": ("pf-elastic-collector",),
        "profiler_symbolizer": ("pf-elastic-symbolizer",), "osquery_manager": ("osquerybeat",),
        "network_traffic": ("packetbeat",), "synthetics": ("heartbeat",),
        "auditd_manager": ("auditbeat",), "fim": ("auditbeat",), "log": ("filebeat",),
        "filestream": ("filebeat",), "httpjson": ("filebeat",), "cel": ("filebeat",),
    }
    for integration, products in expected.items():
        assert elastic.products_for_integration(integration) == (products, True)
    assert elastic.products_for_integration("nginx") == (("filebeat", "metricbeat"), False)
