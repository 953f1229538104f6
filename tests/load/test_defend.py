"""Elastic Defend's artifacts on the isolated side: laid out beside the agents' binaries,
served as endpoints download them, and the policy settings pointing at them."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml

from airgap.cli import main
from airgap.load.serve import ServeSettings
from tests.conftest import DEFEND_ARTIFACTS
from tests.peers.serving import BackgroundArtifactServer

MANIFEST = "endpoint/manifest/artifacts-9.0.0.zip"
SETTINGS = ("linux.advanced.artifacts.global.base_url", "mac.advanced.artifacts.global.base_url",
            "windows.advanced.artifacts.global.base_url")


def endpoint_update(base_url: str, known_tag: str | None = None
                    ) -> tuple[int, str, dict[str, bytes]]:
    """What Elastic Endpoint does: the manifest (unless its ETag is the one it has), then
    every artifact at base_url + relative_url, checked against the manifest."""
    headers = {"If-None-Match": known_tag} if known_tag else {}
    answer = httpx.get(f"{base_url}/downloads/{MANIFEST}", headers=headers)
    if answer.status_code == 304:
        return 304, answer.headers["etag"], {}
    assert answer.status_code == 200
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert "manifest.sig" in archive.namelist()
    got = {}
    for name, entry in manifest["artifacts"].items():
        body = httpx.get(base_url + entry["relative_url"]).content
        assert hashlib.sha256(body).hexdigest() == entry["encoded_sha256"]
        assert len(body) == entry["encoded_size"]
        got[name] = body
    return 200, answer.headers["etag"], got


def test_load_lays_defend_out_beside_the_binaries_and_serve_answers_endpoints(
        rich_bundle: Path, operator_key: Path, tmp_path: Path) -> None:
    served = tmp_path / "artifact-registry"
    trust = ("--trust-key", str(operator_key))
    assert main(["load", str(rich_bundle), "--artifacts", str(served), *trust, "--quiet"]) == 0
    assert (served / MANIFEST).is_file()
    assert (served / "beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz").is_file()
    with BackgroundArtifactServer(ServeSettings(root=served, port=0)) as server:
        status, tag, got = endpoint_update(server.url)
        assert status == 200 and set(got) == set(DEFEND_ARTIFACTS)
        # The next poll: nothing new, nothing downloaded.
        assert endpoint_update(server.url, tag)[0] == 304
    # A second load changes nothing.
    assert main(["load", str(rich_bundle), "--artifacts", str(served), *trust, "--quiet"]) == 0


def test_defend_is_laid_out_only_when_the_operator_vouches_for_it(
        rich_bundle: Path, signer_public_key: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    served = tmp_path / "artifact-registry"
    assert main(["load", str(rich_bundle), "--artifacts", str(served), "--trust-signer",
                 str(signer_public_key), "--quiet"]) == 3
    shown = capsys.readouterr()
    assert "security/" in shown.out and "Endpoint refuses a changed one" in shown.out
    assert not served.exists()


def test_config_writes_the_three_base_url_settings(rich_bundle: Path, tmp_path: Path,
                                                   operator_key: Path) -> None:
    out = tmp_path / "settings"
    trust = ["--trust-key", str(operator_key)]
    assert main(["load", str(rich_bundle), "--config", str(out), "--registry-url",
                 "https://epr.corp:8443", "--artifacts-url",
                 "https://artifacts.corp:8000/downloads/", "--quiet", *trust]) == 0
    settings = yaml.safe_load((out / "elastic-defend-advanced-settings.yml").read_text())
    assert settings == dict.fromkeys(SETTINGS, "https://artifacts.corp:8000")
    readme = (out / "README.md").read_text()
    assert "Elastic Defend" in readme and all(key in readme for key in SETTINGS)
    other = tmp_path / "other"
    assert main(["load", str(rich_bundle), "--config", str(other), "--registry-url",
                 "https://epr.corp:8443", "--artifacts-url", "https://files.corp/elastic/",
                 "--defend-url", "https://defend.corp/mirror/", "--quiet", *trust]) == 0
    assert set(yaml.safe_load((other / "elastic-defend-advanced-settings.yml").read_text())
               .values()) == {"https://defend.corp/mirror"}


def test_a_defend_mirror_that_cannot_be_derived_is_refused_before_anything(
        rich_bundle: Path, tmp_path: Path) -> None:
    served = tmp_path / "served"
    code = main(["load", str(rich_bundle), "--artifacts", str(served), "--config",
                 str(tmp_path / "s"), "--registry-url", "https://epr.corp:8443",
                 "--artifacts-url", "https://files.corp/elastic/"])
    assert code == 2
    assert not served.exists()


def test_no_defend_settings_for_a_bundle_without_defend(golden_bundle: Path, tmp_path: Path,
                                                        operator_key: Path) -> None:
    out = tmp_path / "settings"
    assert main(["load", str(golden_bundle), "--config", str(out), "--registry-url",
                 "https://epr.corp:8443", "--artifacts-url", "https://files.corp/elastic/",
                 "--quiet", "--trust-key", str(operator_key)]) == 0
    assert not (out / "elastic-defend-advanced-settings.yml").exists()


def test_packages_are_pinned_on_request(rich_bundle: Path, tmp_path: Path,
                                        operator_key: Path) -> None:
    # A tailored registry's bundle pins them by default: tests/load/test_tailored.py.
    def pins(bundle: Path, *extra: str) -> object:
        out = tmp_path / f"settings-{len(list(tmp_path.iterdir()))}"
        assert main(["load", str(bundle), "--config", str(out), "--registry-url",
                     "https://epr.corp:8443", "--artifacts-url",
                     "https://artifacts.corp:8000/downloads/", "--quiet", "--trust-key",
                     str(operator_key), *extra]) == 0
        return yaml.safe_load((out / "kibana.yml").read_text()).get("xpack.fleet.packages")

    assert pins(rich_bundle) is None
    assert pins(rich_bundle, "--pin-packages") == [{"name": "endpoint", "version": "9.0.0"}]
