"""The loopback peers answer as the real services do: checked with real clients."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import FIXTURES, TEST_REPOSITORY, TEST_TAG
from tests.peers.artifacts import ArtifactServer
from tests.peers.defend import DefendServer
from tests.peers.epr import EprServer, satisfies
from tests.peers.files import Fault
from tests.peers.gpgkeys import SigningKey
from tests.peers.images import TestImage
from tests.peers.net import free_port, wait_until
from tests.peers.processes import Dockerd, DockerRegistry

AGENT = "beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, check=True,
                          timeout=300)


# -- docker-registry -------------------------------------------------------------------------


def test_registry_serves_the_multi_platform_image(pushed_image: TestImage,
                                                  registry: DockerRegistry) -> None:
    ref = f"docker://{registry.host}/{TEST_REPOSITORY}:{TEST_TAG}"
    raw = skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == pushed_image.index_digest
    index = json.loads(raw)
    platforms = {(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]}
    assert platforms == {("linux", "amd64"), ("linux", "arm64")}
    layers = {}
    for arch in ("amd64", "arm64"):
        info = json.loads(skopeo("inspect", "--tls-verify=false", "--override-arch", arch,
                                 ref).stdout)
        assert info["Architecture"] == arch
        layers[arch] = info["Layers"]
    shared = set(layers["amd64"]) & set(layers["arm64"])
    assert shared == set(pushed_image.shared_layers)
    assert layers["amd64"][-1] != layers["arm64"][-1]


def test_auth_registry_requires_credentials(auth_registry: DockerRegistry) -> None:
    response = httpx.get(f"{auth_registry.url}/v2/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")


# -- dockerd ---------------------------------------------------------------------------------


def test_dockerd_loads_and_runs_the_test_image(dockerd: Dockerd, test_image: TestImage,
                                               tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    skopeo("copy", "--override-arch", "amd64", f"oci:{test_image.layout}:{TEST_TAG}",
           f"docker-archive:{archive}:airgap-test/peer:{TEST_TAG}")
    env = dockerd.env()
    loaded = subprocess.run(["docker", "load", "-i", str(archive)], env=env, capture_output=True,
                            text=True, check=True)
    assert f"airgap-test/peer:{TEST_TAG}" in loaded.stdout
    port = free_port()
    started = subprocess.run(
        ["docker", "run", "-d", "--rm", "--pull", "never", "--network", "host", "-e",
         f"EPR_ADDRESS=127.0.0.1:{port}", f"airgap-test/peer:{TEST_TAG}"],
        env=env, capture_output=True, text=True, check=True)
    container = started.stdout.strip()
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200, 30,
                   "/health answering")
    finally:
        subprocess.run(["docker", "rm", "-f", container], env=env, capture_output=True)


# -- artifact server -------------------------------------------------------------------------


def test_artifact_server_follows_elastic_layout(artifact_server: ArtifactServer,
                                                signer: SigningKey, tmp_path: Path) -> None:
    path = artifact_server.publish(AGENT, size=10_000)
    url = artifact_server.url + AGENT
    body = httpx.get(url).content
    assert body == path.read_bytes()
    checksum = httpx.get(url + ".sha512").text
    assert checksum == f"{hashlib.sha512(body).hexdigest()}  {path.name}"  # no newline
    (tmp_path / "f").write_bytes(body)
    (tmp_path / "f.asc").write_bytes(httpx.get(url + ".asc").content)
    check = subprocess.run(["gpgv", "--keyring", str(signer.home / "pubring.kbx"),
                            str(tmp_path / "f.asc"), str(tmp_path / "f")], capture_output=True)
    assert check.returncode == 0, check.stderr
    assert httpx.get(artifact_server.url + "beats/nothing.tar.gz").status_code == 404
    assert httpx.head(url).headers["content-length"] == "10000"


def test_artifact_server_honours_range(artifact_server: ArtifactServer) -> None:
    path = artifact_server.publish(AGENT, size=10_000)
    response = httpx.get(artifact_server.url + AGENT, headers={"Range": "bytes=4000-"})
    assert response.status_code == 206
    assert response.headers["content-range"] == "bytes 4000-9999/10000"
    assert response.content == path.read_bytes()[4000:]


@pytest.mark.parametrize("kind", ["drop", "truncate"])
def test_artifact_server_breaks_mid_body_then_recovers(artifact_server: ArtifactServer,
                                                       kind: str) -> None:
    path = artifact_server.publish(AGENT, size=300_000)
    artifact_server.faults.inject(f"*{path.name}", Fault(kind, after=100_000))
    with pytest.raises(httpx.TransportError):
        httpx.get(artifact_server.url + AGENT)
    resumed = httpx.get(artifact_server.url + AGENT, headers={"Range": "bytes=100000-"})
    assert resumed.status_code == 206
    assert resumed.content == path.read_bytes()[100_000:]
    assert [r.fault for r in artifact_server.faults.requests(f"*{path.name}")] == [kind, None]


def test_artifact_server_status_slow_stall_ignore_range_corrupt(
        artifact_server: ArtifactServer) -> None:
    path = artifact_server.publish(AGENT, size=200_000)
    url = artifact_server.url + AGENT
    faults = artifact_server.faults
    faults.inject(f"*{path.name}", Fault("status", times=2, status=503, retry_after="1"))
    first = httpx.get(url)
    assert (first.status_code, first.headers["retry-after"]) == (503, "1")
    assert httpx.get(url).status_code == 503
    assert httpx.get(url).status_code == 200
    faults.inject(f"*{path.name}", Fault("ignore_range"))
    ignored = httpx.get(url, headers={"Range": "bytes=5-"})
    assert ignored.status_code == 200 and len(ignored.content) == 200_000
    faults.inject(f"*{path.name}", Fault("corrupt"))
    corrupt = httpx.get(url).content
    assert len(corrupt) == 200_000 and corrupt != path.read_bytes()
    faults.inject(f"*{path.name}", Fault("slow", delay=0.05))
    started = time.monotonic()
    assert httpx.get(url).content == path.read_bytes()
    assert time.monotonic() - started >= 0.1  # 4 chunks of 64 KiB, 50 ms apart
    faults.inject(f"*{path.name}", Fault("stall", after=1000, delay=5))
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, timeout=httpx.Timeout(5, read=0.5))


def test_artifact_server_redirects_to_storage(artifact_server: ArtifactServer) -> None:
    path = artifact_server.publish(AGENT, size=1000)
    artifact_server.redirect = True
    response = httpx.get(artifact_server.url + AGENT)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.endswith(AGENT) and not location.startswith(artifact_server.url)
    assert httpx.get(artifact_server.url + AGENT, follow_redirects=True).content == \
        path.read_bytes()


def test_artifact_server_refuses_escapes(artifact_server: ArtifactServer) -> None:
    port = int(artifact_server.url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /downloads/../../../etc/passwd HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        answer = sock.recv(4096)
    assert b" 404 " in answer.split(b"\r\n")[0] or b" 400 " in answer.split(b"\r\n")[0]
    assert b"root:" not in answer


# -- EPR -------------------------------------------------------------------------------------


def test_epr_answers_index_health_and_search(epr_server: EprServer) -> None:
    assert httpx.get(epr_server.url).json() == {"service.name": "package-registry",
                                                "service.version": "1.40.1"}
    health = httpx.get(epr_server.url + "health")
    assert (health.status_code, health.content) == (200, b"")
    found = httpx.get(epr_server.url + "search",
                      params={"package": "system", "kibana.version": "9.0.0",
                              "prerelease": "false"})
    assert found.headers["content-type"].startswith("application/json")
    items = found.json()
    assert [i["version"] for i in items] == ["2.1.0"]
    assert set(items[0]) >= {"name", "title", "version", "release", "description", "type",
                             "download", "path", "conditions", "owner", "categories",
                             "signature_path"}
    assert items[0]["download"] == "/epr/system/system-2.1.0.zip"
    assert items[0]["signature_path"] == "/epr/system/system-2.1.0.zip.sig"


def test_epr_search_filters(epr_server: EprServer) -> None:
    def versions(**params: str) -> list[tuple[str, str]]:
        items = httpx.get(epr_server.url + "search", params=params).json()
        return [(i["name"], i["version"]) for i in items]

    assert versions(package="system", prerelease="true") == [("system", "2.2.0-beta1")]
    assert versions(package="system", all="true") == [("system", "1.60.0"), ("system", "2.1.0")]
    assert versions(package="nginx", **{"kibana.version": "9.0.0"}) == [("nginx", "2.0.0")]
    assert versions(package="nginx", **{"kibana.version": "9.1.0"}) == [("nginx", "3.0.0")]
    assert versions(package="legacy_only", **{"kibana.version": "9.0.0"}) == []
    assert httpx.get(epr_server.url + "search?kibana.version=banana").status_code == 400
    assert httpx.get(epr_server.url + "search?all=maybe").status_code == 400


def test_epr_package_info_and_signed_downloads(epr_server: EprServer, signer: SigningKey,
                                               tmp_path: Path) -> None:
    info = httpx.get(epr_server.url + "package/nginx/2.0.0/").json()
    assert info["name"] == "nginx" and info["format_version"] == "3.0.0"
    assert httpx.get(epr_server.url + "package/nginx/9.9.9/").status_code == 404
    epr_server.redirect = True
    zip_url = epr_server.url + "epr/nginx/nginx-2.0.0.zip"
    assert httpx.get(zip_url).status_code == 302
    (tmp_path / "p.zip").write_bytes(httpx.get(zip_url, follow_redirects=True).content)
    (tmp_path / "p.zip.sig").write_bytes(httpx.get(zip_url + ".sig", follow_redirects=True).content)
    check = subprocess.run(["gpgv", "--keyring", str(signer.home / "pubring.kbx"),
                            str(tmp_path / "p.zip.sig"), str(tmp_path / "p.zip")],
                           capture_output=True)
    assert check.returncode == 0, check.stderr


def test_epr_follows_the_real_registrys_rules(epr_server: EprServer) -> None:
    def versions(**params: str) -> list[str]:
        answer = httpx.get(epr_server.url + "search", params=params)
        assert answer.status_code == 200, answer.text
        return [i["version"] for i in answer.json()]

    # 0.x versions are ordinary releases; only a semver pre-release part makes one.
    epr_server.add("young", "0.3.0")
    epr_server.add("young", "0.4.0-rc1")
    assert versions(package="young", prerelease="false") == ["0.3.0"]
    assert versions(package="young", prerelease="true") == ["0.4.0-rc1"]
    # Parameters it does not know are accepted (the registry's default).
    assert versions(package="young", unknown="x", capabilities="apm") == ["0.3.0"]
    # spec.min and spec.max bound the package's format_version (major.minor).
    epr_server.add("specced", "1.0.0", format_version="2.2.0")
    epr_server.add("specced", "2.0.0", format_version="3.3.1")
    epr_server.add("specced", "3.0.0", format_version="3.4.0")
    assert versions(package="specced", all="true") == ["1.0.0", "2.0.0", "3.0.0"]
    assert versions(package="specced", all="true", **{"spec.min": "2.3", "spec.max": "3.3"}) \
        == ["2.0.0"]
    assert versions(package="specced", **{"spec.max": "3.4"}) == ["3.0.0"]
    assert httpx.get(epr_server.url + "search?spec.max=three").status_code == 400


def test_epr_answers_have_the_shape_of_the_golden_files(epr_server: EprServer) -> None:
    def shape(value: object) -> object:
        if isinstance(value, dict):
            return {key: shape(item) for key, item in value.items()}
        return type(value).__name__

    golden = FIXTURES / "package-registry"
    (search,) = json.loads((golden / "search-package-example.json").read_text())
    package = json.loads((golden / "package-zip.json").read_text())
    (item,) = httpx.get(epr_server.url + "search", params={"package": "nginx"}).json()
    info = httpx.get(epr_server.url + "package/nginx/2.0.0/").json()
    for expected, answer in ((search, item), (package, info)):
        missing = set(expected) - set(answer)
        assert not missing, missing
        for key in expected:
            if isinstance(expected[key], dict | list | str):
                assert type(answer[key]) is type(expected[key]), key
    assert shape(item["conditions"]) == shape(search["conditions"])
    assert item["signature_path"] == item["download"] + ".sig"
    epr_server.add("unsigned", "1.0.0", signed=False)
    (bare,) = httpx.get(epr_server.url + "search", params={"package": "unsigned"}).json()
    assert "signature_path" not in bare  # as the registry answers for a zip without .sig


def test_constraint_matching() -> None:
    assert satisfies("9.0.0", "^8.13.0 || ^9.0.0")
    assert not satisfies("8.12.9", "^8.13.0 || ^9.0.0")
    assert satisfies("7.17.3", "~7.x.x")
    assert satisfies("8.5.0", ">= 8.0.0, < 9.0.0")
    assert not satisfies("9.0.0", ">=8.0.0 <9.0.0")


def test_defend_server_follows_the_real_layout(defend_server: DefendServer) -> None:
    import io
    import zipfile
    import zlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    defend_server.publish("9.0.0", "1.0.5", {"rules-v1": b"rule\n" * 100})
    answer = httpx.get(defend_server.url + "downloads/endpoint/manifest/artifacts-9.0.0.zip")
    assert answer.status_code == 200 and answer.headers["etag"]
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert archive.namelist()[0] == "manifest.json"  # what `zcat` reads
        data, signature = archive.read("manifest.json"), archive.read("manifest.sig")
    defend_server.key.public_key().verify(signature, data, padding.PKCS1v15(),
                                          hashes.SHA256())
    manifest = json.loads(data)
    assert manifest["manifest_version"] == "1.0.5"
    entry = manifest["artifacts"]["rules-v1"]
    body = httpx.get(defend_server.url.rstrip("/") + entry["relative_url"]).content
    assert hashlib.sha256(body).hexdigest() == entry["encoded_sha256"]
    assert len(body) == entry["encoded_size"]
    assert zlib.decompress(body) == b"rule\n" * 100
    assert hashlib.sha256(zlib.decompress(body)).hexdigest() == entry["decoded_sha256"]
