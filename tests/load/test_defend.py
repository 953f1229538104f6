"""Elastic Defend's artifacts on the isolated side: laid out beside the agents' binaries,
served as endpoints download them, and the policy settings pointing at them."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml

from airgap.cli import main
from airgap.load.serve import ServeSettings
from tests.bundle.test_verify import forge
from tests.conftest import DEFEND_ARTIFACTS
from tests.peers.defend import make_manifest_zip
from tests.peers.gpgkeys import SigningKey
from tests.peers.serving import BackgroundArtifactServer
from tests.peers.tls import make_certificate
from tests.terminal import in_pipe

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


def misplaced(rich_bundle: Path, operator: SigningKey, tmp_path: Path) -> Path:
    """A copy of the bundle whose manifest lists an artifact outside /downloads/, the file
    there, bundle.json and SHA512SUMS agreeing, signed by the operator (what an airgap
    without the rule fetched from a mirror that misplaces a file)."""
    bundle = tmp_path / "misplaced"
    shutil.copytree(rich_bundle, bundle)
    manifest = bundle / "security/downloads" / MANIFEST
    with zipfile.ZipFile(manifest) as archive:
        document = json.loads(archive.read("manifest.json"))
        signature = archive.read("manifest.sig")
    entry = document["artifacts"]["production-rules-linux-v1"]
    old = "security" + entry["relative_url"]
    entry["relative_url"] = "/elsewhere" + entry["relative_url"]
    new = "security" + entry["relative_url"]
    (bundle / new).parent.mkdir(parents=True)
    (bundle / old).rename(bundle / new)
    manifest.write_bytes(make_manifest_zip(document, extra={"manifest.sig": signature}))
    description = json.loads((bundle / "bundle.json").read_text())
    for item in description["items"]:
        item["path"] = new if item["path"] == old else item["path"]
    forge(bundle, description)
    operator.sign(bundle / "SHA512SUMS", bundle / "SHA512SUMS.asc")
    return bundle


def test_a_defend_file_outside_downloads_is_refused_before_anything_is_laid_out(
        rich_bundle: Path, operator: SigningKey, operator_key: Path, tmp_path: Path) -> None:
    bundle = misplaced(rich_bundle, operator, tmp_path)
    trust = ("--trust-key", str(operator_key))
    checked = in_pipe("verify", str(bundle), *trust)
    assert checked.returncode == 3, checked.stdout + checked.stderr
    assert "relative_url: '/elsewhere/downloads/endpoint/" in checked.stdout
    assert "is not below /downloads/" in checked.stdout
    served = tmp_path / "served"
    loaded = in_pipe("load", str(bundle), *trust, "--artifacts", str(served))
    assert loaded.returncode == 3, loaded.stderr
    assert not served.exists() or not any(served.rglob("*"))
    serving = in_pipe("serve", str(bundle), *trust, "--port", "0", timeout=60)
    assert serving.returncode == 3, serving.stderr
    assert "is not below /downloads/" in serving.stdout
    assert "nothing was served" in serving.stderr
    # Unverified, the layout itself still refuses it, before the binaries are copied.
    skipped = in_pipe("load", str(bundle), "--skip-verify", "--artifacts", str(served))
    assert skipped.returncode == 3, skipped.stderr
    assert "an Elastic Defend file outside security/downloads/" in skipped.stderr
    assert "nothing was laid out" in skipped.stderr
    assert not served.exists() or not [p for p in served.rglob("*") if p.is_file()]


def test_a_private_ca_goes_into_defends_ca_cert_and_the_readme_says_what_is_known(
        rich_bundle: Path, operator_key: Path, tmp_path: Path) -> None:
    trust = ("--trust-key", str(operator_key))  # --config writes what bundle.json says
    ca, _ = make_certificate(tmp_path / "tls", common_name="corp CA")
    out = tmp_path / "settings"
    loaded = in_pipe("load", str(rich_bundle), "--config", str(out), "--registry-url",
                     "https://epr.corp:8443", "--artifacts-url",
                     "https://artifacts.corp:8000/downloads/", "--ca-cert", str(ca), *trust)
    assert loaded.returncode == 0, loaded.stderr
    settings = yaml.safe_load((out / "elastic-defend-advanced-settings.yml").read_text())
    ca_keys = [key.replace(".base_url", ".ca_cert") for key in SETTINGS]
    assert settings == {**dict.fromkeys(SETTINGS, "https://artifacts.corp:8000"),
                        **dict.fromkeys(ca_keys, ca.read_text().strip() + "\n")}
    readme = " ".join((out / "README.md").read_text().split())
    assert "`linux.advanced.artifacts.global.ca_cert`: the certificate in `ca.pem`" in readme
    assert "only a superuser change these `artifacts.global` settings" in readme
    assert "`global_manifest_version`) is not known to work with a mirror" in readme
    # Two certificates: Elastic documents one; the README says which to give.
    both = tmp_path / "both.pem"
    both.write_text(ca.read_text() + make_certificate(tmp_path / "other")[0].read_text())
    other = tmp_path / "settings-2"
    assert in_pipe("load", str(rich_bundle), "--config", str(other), "--registry-url",
                   "https://epr.corp:8443", "--artifacts-url",
                   "https://artifacts.corp:8000/downloads/", "--ca-cert",
                   str(both), *trust).returncode == 0
    assert set(yaml.safe_load((other / "elastic-defend-advanced-settings.yml")
                              .read_text())) == set(SETTINGS)
    assert "`ca.pem` holds 2 certificates" in (other / "README.md").read_text()
    # A plain-HTTP mirror has no certificate to check.
    plain = tmp_path / "settings-3"
    assert in_pipe("load", str(rich_bundle), "--config", str(plain), "--registry-url",
                   "https://epr.corp:8443", "--artifacts-url",
                   "http://artifacts.corp:8000/downloads/", "--ca-cert",
                   str(ca), *trust).returncode == 0
    assert set(yaml.safe_load((plain / "elastic-defend-advanced-settings.yml")
                              .read_text())) == set(SETTINGS)
