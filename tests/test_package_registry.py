"""Elastic's package registry facts: image tags, the server image, the API's paths and the
spec range each Kibana sends, checked against Elastic's own files."""

from __future__ import annotations

import yaml

from airgap import package_registry as pr
from tests.conftest import FIXTURES


def test_registry_tags_and_epr_paths() -> None:
    assert pr.registry_tag("9.0.0", "lite", "ubi", None) == "lite-9.0.0-ubi"
    assert pr.registry_tag("9.0.0", "full", None, "production") == "production"
    assert pr.registry_tag("9.0.0", "tailored", "fips", None) == "tailored-9.0.0-fips"
    assert pr.epr_search_path("nginx", "9.0.0") == \
        "search?package=nginx&kibana.version=9.0.0&prerelease=false&spec.min=2.3&spec.max=3.3"
    assert pr.epr_search_path("nginx", "8.14.3", all_versions=True,
                              prerelease=True) == \
        "search?package=nginx&kibana.version=8.14.3&prerelease=true&all=true"
    assert pr.package_filename("nginx", "2.0.0") == "nginx-2.0.0.zip"
    assert pr.epr_file_url("https://epr.corp/mirror/", "/epr/nginx/nginx-2.0.0.zip") == \
        "https://epr.corp/mirror/epr/nginx/nginx-2.0.0.zip"


def test_the_tailored_base_is_the_v_prefixed_server_image() -> None:
    assert pr.base_image(None) == \
        f"docker.elastic.co/package-registry/package-registry:v{pr.PACKAGE_REGISTRY_VERSION}"
    assert pr.base_image("ubi").endswith(f":v{pr.PACKAGE_REGISTRY_VERSION}-ubi")
    config = yaml.safe_load((FIXTURES / "package-registry" / "config.docker.yml").read_text())
    assert config["package_paths"] == [pr.PACKAGE_PATH]


def test_kibana_spec_range_follows_elastics_own_matrix() -> None:
    matrix = yaml.safe_load((FIXTURES / "package-registry" / "lite.yaml").read_text())["matrix"]
    for entry in matrix:
        if "kibana.version" not in entry:
            # The table's catch-all: what a Kibana past its end gets.
            catch_all = (str(entry["spec.min"]), str(entry["spec.max"]))
            assert catch_all == pr.KIBANA_SPEC_AFTER_TABLE
            continue
        expected = tuple(str(entry[k]) if k in entry else None for k in ("spec.min", "spec.max"))
        assert pr.kibana_spec(entry["kibana.version"]) == expected, entry
    # Between and past the table's versions: by major.minor, then the catch-all.
    assert pr.kibana_spec("8.16.9") == (None, "3.3")
    assert pr.kibana_spec("8.14.0") == (None, None)
    assert pr.kibana_spec("9.2.0") == pr.kibana_spec("10.0.0") == ("2.3", "3.4")
