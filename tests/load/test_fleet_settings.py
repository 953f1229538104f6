"""The settings ``--config`` writes: only what the bundle's Kibana reads, pinned packages on
request, and a README that says where each file goes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airgap.errors import UsageError
from airgap.load.fleet_settings import ConfigSettings, write_config

REGISTRY = "https://epr.corp:8443"
ARTIFACTS = "https://artifacts.corp:8000/downloads/"


def kibana(tmp_path: Path, version: str, **options: object) -> dict[str, object]:
    out = tmp_path / version
    write_config(ConfigSettings(out, REGISTRY, ARTIFACTS, stack_version=version,
                                **options))  # type: ignore[arg-type]
    loaded: dict[str, object] = yaml.safe_load((out / "kibana.yml").read_text())
    return loaded


def test_kibana_settings_follow_the_version(tmp_path: Path) -> None:
    assert kibana(tmp_path, "8.12.2") == {
        "xpack.fleet.registryUrl": REGISTRY,
        "xpack.fleet.packageVerification.gpgKeyPath": "/etc/kibana/GPG-KEY-elasticsearch"}
    assert kibana(tmp_path, "8.13.0")["xpack.fleet.isAirGapped"] is True
    assert "xpack.fleet.binaryDownloadSource" not in kibana(tmp_path, "9.5.0")
    newest = kibana(tmp_path, "9.6.0")
    assert newest["xpack.fleet.binaryDownloadSource"] == [{
        "id": "airgap-artifact-registry", "name": "airgap artifact registry",
        "host": ARTIFACTS, "is_default": True}]
    readme = (tmp_path / "9.6.0" / "README.md").read_text()
    assert "Nothing to do: `xpack.fleet.binaryDownloadSource`" in readme
    older = (tmp_path / "8.12.2" / "README.md").read_text()
    assert "not `xpack.fleet.isAirGapped`: Kibana reads it from 8.13.0 only" in older
    assert "Agent binary download, add the URL" in older


def test_packages_pinned_when_asked(tmp_path: Path) -> None:
    pinned = kibana(tmp_path, "9.0.0", packages={"system": "2.1.0", "endpoint": "9.0.0"})
    assert pinned["xpack.fleet.packages"] == [{"name": "endpoint", "version": "9.0.0"},
                                              {"name": "system", "version": "2.1.0"}]
    assert "xpack.fleet.packages" not in kibana(tmp_path, "9.0.1")
    # What Elastic documents, no more: installed when the Fleet app starts up.
    readme = " ".join((tmp_path / "9.0.0" / "README.md").read_text().split())
    assert "Kibana installs them when the Fleet app starts up" in readme
    assert "no other version" not in readme


def test_readme_says_what_fleet_server_needs_for_the_pgp_endpoint(tmp_path: Path) -> None:
    write_config(ConfigSettings(tmp_path, REGISTRY, ARTIFACTS))
    readme = (tmp_path / "README.md").read_text()
    assert "`server.pgp.dir`" in readme and "mode 0600" in readme
    assert "over\n  TLS only" in readme or "TLS only" in readme.replace("\n  ", " ")
    assert readme.index("## Kibana") < readme.index("## Fleet Server")


def test_a_defend_mirror_needs_a_downloads_url_or_its_own(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="give Elastic Defend's mirror"):
        write_config(ConfigSettings(tmp_path, REGISTRY, "https://files.corp/x/", defend=True))
