"""A tailored registry on the real peers: Docker runs it, containerd imports it, skopeo
copies it, all with the digests airgap composed, for an OCI and a Docker v2 base."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from airgap.cli import main
from airgap.load.export import export_image
from tests.conftest import TAILORED_PACKAGES
from tests.layers import file_member, members_of, rewrite_layer
from tests.peers.gpgkeys import SigningKey
from tests.peers.net import free_port
from tests.peers.processes import Containerd, Dockerd, DockerRegistry

TAILORED = "docker.elastic.co/package-registry/distribution:tailored-9.0.0"


def description(bundle: Path) -> dict[str, object]:
    return json.loads((bundle / "bundle.json").read_text())  # type: ignore[no-any-return]


def package_sums(bundle: Path) -> dict[str, str]:
    """The SHA-512 of every package zip and .sig of the bundle, by file name."""
    return {p.name: hashlib.sha512(p.read_bytes()).hexdigest()
            for p in (bundle / "packages").rglob("*") if p.is_file()}


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, check=True,
                          timeout=300)


def test_load_run_starts_it_as_uid_1000_reading_every_zip_and_sig(
        tailored_bundle: Path, engine: Dockerd, operator_key: Path) -> None:
    port = free_port()
    assert main(["load", str(tailored_bundle), "--docker", "--run", "--network", "host",
                 "--port", str(port), "--name", "tailored-registry", "--quiet",
                 "--trust-key", str(operator_key)]) == 0
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/health").status_code == 200
    assert httpx.get(f"{base}/whoami.txt").text.strip() == "1000"
    # What the server stand-in read at start-up, as uid 1000: every zip and its .sig.
    read = {}
    for line in httpx.get(f"{base}/packages.txt").text.splitlines():
        digest, path = line.split()
        assert path.startswith("/packages/package-registry/")
        read[path.rsplit("/", 1)[1]] = digest
    assert read == package_sums(tailored_bundle)
    # /search, which load --run asked too, lists what it read.
    listed = {(p["name"], p["version"]) for p in httpx.get(f"{base}/search").json()}
    assert listed == {(n, v) for n, v in TAILORED_PACKAGES.items()}
    inspected = json.loads(subprocess.run(["docker", "image", "inspect", TAILORED],
                                          env=engine.env(), capture_output=True, text=True,
                                          check=True).stdout)[0]
    assert inspected["Config"]["User"] == "1000"


def test_the_server_stand_in_refuses_a_zip_without_its_signature(
        tailored_bundle: Path, engine: Dockerd, tmp_path: Path) -> None:
    # The check the real server makes since 1.38, which a tailored layer must satisfy:
    # shown here to be one the stand-in really makes.
    assert main(["load", str(tailored_bundle), "--docker", "--quiet", "--skip-verify"]) == 0
    mounted = tmp_path / "packages"
    mounted.mkdir()
    (mounted / "lonely-1.0.0.zip").write_bytes(b"PK")
    mounted.chmod(0o755)
    ran = subprocess.run(["docker", "run", "--rm", "--network", "host", "-e",
                          f"EPR_ADDRESS=127.0.0.1:{free_port()}", "-v",
                          f"{mounted}:/packages/package-registry:ro", TAILORED],
                         env=engine.env(), capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1
    assert "lonely-1.0.0.zip has no signature file" in ran.stderr


def test_containerd_imports_it_and_unpacks_every_layer_against_its_diff_id(
        tailored_bundle: Path, containerd: Containerd, tmp_path: Path) -> None:
    image = description(tailored_bundle)["image"]
    assert isinstance(image, dict)
    for platform in ("linux/amd64", "linux/arm64"):
        tar = tmp_path / f"{platform.replace('/', '-')}.tar"
        export_image(tailored_bundle, platform, tar)
        imported = containerd.ctr("images", "import", "--platform", platform, "--snapshotter",
                                  "native", "--digests", str(tar))
        assert imported.returncode == 0, imported.stderr
        rows = [line.split() for line in containerd.ctr("images", "ls").stdout.splitlines()[1:]]
        manifest = image["platforms"][platform]["manifest"]
        assert {row[0]: row[2] for row in rows}[TAILORED] == manifest
        # Unpacked: each layer applied, its uncompressed digest checked against the config.
        check = containerd.ctr("images", "check", f"name=={TAILORED}")
        assert check.returncode == 0 and "complete" in check.stdout, check.stdout + check.stderr
        containerd.ctr("images", "rm", TAILORED)


def test_skopeo_copies_it_to_the_registry_and_back_with_identical_digests(
        tailored_bundle: Path, registry: DockerRegistry, tmp_path: Path,
        operator_key: Path) -> None:
    image = description(tailored_bundle)["image"]
    assert isinstance(image, dict)
    first = f"{registry.host}/airgap-test/{tmp_path.name}/tailored:tailored-9.0.0"
    if image["media_type"].startswith("application/vnd.oci."):
        skopeo("copy", "--all", "--preserve-digests", "--quiet", "--dest-tls-verify=false",
               f"oci:{tailored_bundle}/images:tailored-9.0.0", f"docker://{first}")
    else:
        # skopeo reads no Docker v2 index from an OCI layout: airgap pushes it, and skopeo
        # copies it on from there.
        pushed = f"{registry.host}/airgap-test/{tmp_path.name}"
        assert main(["load", str(tailored_bundle), "--registry", pushed, "--insecure",
                     "--quiet", "--trust-key", str(operator_key)]) == 0
        first = f"{pushed}/package-registry/distribution:tailored-9.0.0"
    second = f"{registry.host}/airgap-test/{tmp_path.name}/copied:tailored-9.0.0"
    skopeo("copy", "--all", "--preserve-digests", "--quiet", "--src-tls-verify=false",
           "--dest-tls-verify=false", f"docker://{first}", f"docker://{second}")
    for reference in (first, second):
        raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reference}").stdout
        assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == image["digest"]
    back = tmp_path / "back"
    skopeo("copy", "--all", "--preserve-digests", "--quiet", "--src-tls-verify=false",
           f"docker://{second}", f"dir:{back}")
    assert "sha256:" + hashlib.sha256((back / "manifest.json").read_bytes()).hexdigest() == \
        image["digest"]
    blobs = {p.name for p in back.iterdir()}
    for platform in image["platforms"].values():
        assert {d[7:] for d in platform["layers"]} <= blobs
        assert platform["config"][7:] in blobs
        assert (back / f"{platform['manifest'][7:]}.manifest.json").is_file()


def test_load_refuses_a_layer_with_an_extra_member_and_loads_nothing(
        tailored_bundle: Path, engine: Dockerd, tmp_path: Path, operator: SigningKey,
        operator_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    subprocess.run(["cp", "-a", str(tailored_bundle), str(bundle)], check=True)
    # Even signed again by the operator: the layer's members tell.
    rewrite_layer(bundle, [*members_of(bundle), file_member("evil-6.6.6.zip", b"PK")],
                  sign=operator)
    assert main(["load", str(bundle), "--docker", "--quiet", "--trust-key",
                 str(operator_key)]) == 3
    err = capsys.readouterr().err
    assert "failed verification: nothing was loaded" in err
    assert "evil-6.6.6.zip: a file that is not one of the bundle's verified packages" in err
    assert subprocess.run(["docker", "image", "ls", "-aq"], env=engine.env(),
                          capture_output=True, text=True).stdout.strip() == ""


def test_kibana_is_pinned_to_exactly_the_packages_of_the_image(
        tailored_bundle: Path, operator_key: Path, tmp_path: Path) -> None:
    def pins(*extra: str) -> object:
        out = tmp_path / f"settings-{len(list(tmp_path.iterdir()))}"
        assert main(["load", str(tailored_bundle), "--config", str(out), "--registry-url",
                     "https://epr.corp:8443", "--artifacts-url",
                     "https://artifacts.corp:8000/downloads/", "--quiet", "--trust-key",
                     str(operator_key), *extra]) == 0
        return yaml.safe_load((out / "kibana.yml").read_text()).get("xpack.fleet.packages")

    assert pins() == [{"name": name, "version": version}
                      for name, version in sorted(TAILORED_PACKAGES.items())]
    assert pins("--no-pin-packages") is None
