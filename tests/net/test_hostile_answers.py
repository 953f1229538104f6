"""Hostile answers from each server a fetch talks to: the registry, its token service,
artifacts.elastic.co and the EPR.

Each case puts a lying front (tests/peers/hostile.py) before one real peer and runs
``airgap fetch`` as a person does. Each asserts the exit code, that the message names
what was refused, that no traceback was shown and that nothing was written outside the
bundle.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from airgap.cli import main
from airgap.manifest import load_manifest
from airgap.manifest.plan import make_plan
from tests.conftest import TEST_REPOSITORY, ManifestMaker
from tests.peers.artifacts import ArtifactServer
from tests.peers.defend import DefendServer
from tests.peers.epr import EprServer
from tests.peers.hostile import HostileFront, Lie, nested_json, redirect
from tests.peers.images import TestImage
from tests.peers.processes import DockerRegistry

AGENT = "beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"
TAG = f"/v2/{TEST_REPOSITORY}/manifests/9.0.0"


def tree(root: Path, *, leave_out: Path) -> dict[str, bytes | None]:
    """Every path below ``root`` except ``leave_out``, with the bytes of each file."""
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in root.rglob("*") if leave_out != p and leave_out not in p.parents}


@pytest.fixture
def sources(registry: DockerRegistry, pushed_image: TestImage, artifact_server: ArtifactServer,
            epr_server: EprServer) -> Iterator[dict[str, HostileFront]]:
    """A lying front before each real peer (which keeps its own faults off)."""
    fronts = {"registry": HostileFront(registry.url),
              "artifacts": HostileFront(artifact_server.url.removesuffix("downloads/")),
              "epr": HostileFront(epr_server.url)}
    for front in fronts.values():
        front.start()
    yield fronts
    for front in fronts.values():
        front.stop()


def fetch(make_manifest: ManifestMaker, artifact_server: ArtifactServer,
          fronts: dict[str, HostileFront], tmp_path: Path,
          capsys: pytest.CaptureFixture[str]) -> tuple[int, str, Path]:
    manifest = make_manifest(platforms={"arch": ["x86_64"]}, integrations=["nginx"],
                             artifacts={"products": ["elastic-agent"]},
                             sources={"registry": fronts["registry"].url,
                                      "artifacts": fronts["artifacts"].url + "/downloads/",
                                      "epr": fronts["epr"].url + "/"})
    for item in make_plan(load_manifest(manifest)).artifacts:
        if not (artifact_server.root / item.path).exists():
            artifact_server.publish(item.path, 20_000)
    bundle = tmp_path / "bundle"
    before = tree(tmp_path, leave_out=bundle)
    code = main(["fetch", str(manifest), "-o", str(bundle), "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert tree(tmp_path, leave_out=bundle) == before, "something was written outside the bundle"
    assert not (bundle / "SHA512SUMS").exists() or code == 0
    return code, err, bundle


def agent_sha512() -> Lie:
    return Lie(200, {"Content-Type": "text/plain"},
               lambda path: f"{'0' * 128}  {Path(AGENT).name}\n".encode())


# (server, path pattern, the lie, exit code, what the message must name)
CASES: dict[str, tuple[str, str, Lie, int, str]] = {
    "EPR search nested 100,000 deep": (
        "epr", "/search*", Lie(200, {"Content-Type": "application/json"}, nested_json()), 1,
        "nested deeper"),
    "EPR search: HTML with 200": (
        "epr", "/search*", Lie(200, {"Content-Type": "text/html"},
                                b"<html><body>Please log in</body></html>"), 1,
        "the server answered an HTML page instead of the document"),
    "EPR search announces an absurd size": (
        "epr", "/search*", Lie(200, {"Content-Length": str(1 << 40)}, b"[]"), 1, "/search"),
    "EPR search: a version that climbs out": (
        "epr", "/search*", Lie(200, {"Content-Type": "application/json"}, json.dumps(
            [{"name": "nginx", "version": "../../../../tmp/evil"}]).encode()), 1,
        "is not a package version"),
    "package zip redirected to file://": (
        "epr", "/epr/nginx/nginx-2.0.0.zip", redirect("file:///etc/passwd"), 1,
        "non-HTTP URL"),
    "package zip redirected in a loop": (
        "epr", "/epr/nginx/nginx-2.0.0.zip", redirect("/epr/nginx/nginx-2.0.0.zip"), 1,
        "more than 10 redirects"),
    "package zip: HTML with 200": (
        "epr", "/epr/nginx/nginx-2.0.0.zip", Lie(200, {"Content-Type": "text/html"},
                                                  b"<html>captive portal</html>"), 1,
        "nginx-2.0.0.zip: the server answered an HTML page"),
    "package zip: not HTML, not the zip either": (
        "epr", "/epr/nginx/nginx-2.0.0.zip", Lie(200, {"Content-Type": "application/zip"},
                                                  b"PK\x03\x04 not the package"), 3,
        "nginx-2.0.0.zip: does not match its signature"),
    "artifact: HTML with 200": (
        "artifacts", f"/downloads/{AGENT}", Lie(200, {"Content-Type": "text/html"},
                                                 b"<html>captive portal</html>"), 1,
        f"{Path(AGENT).name}: the server answered an HTML page"),
    "artifact: a .sha512 that does not match": (
        "artifacts", f"/downloads/{AGENT}.sha512", agent_sha512(), 3, Path(AGENT).name),
    "artifact redirected to file://": (
        "artifacts", f"/downloads/{AGENT}", redirect("file:///etc/shadow"), 1, "non-HTTP URL"),
    "registry manifest nested 100,000 deep": (
        "registry", TAG, Lie(200, {"Content-Type": "application/vnd.oci.image.index.v1+json"},
                             nested_json()), 1, "nested deeper"),
    "registry manifest announces an absurd size": (
        "registry", TAG, Lie(200, {"Content-Type": "application/vnd.oci.image.index.v1+json",
                                   "Content-Length": str(1 << 40)}, b"{}"), 1,
        "more than the"),
    "registry manifest: HTML with 200": (
        "registry", TAG, Lie(200, {"Content-Type": "text/html"}, b"<html></html>"), 1,
        "the server answered an HTML page instead of the document"),
    "registry blob redirected to file://": (
        "registry", f"/v2/{TEST_REPOSITORY}/blobs/sha256:*", redirect("file:///etc/passwd"), 1,
        "non-HTTP URL"),
    "registry API redirected in a loop": (
        "registry", "/v2/", redirect("/v2/"), 1, "more than 10 redirects"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_answer_is_refused_and_nothing_leaves_the_bundle(
        case: str, sources: dict[str, HostileFront], make_manifest: ManifestMaker,
        artifact_server: ArtifactServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    server, pattern, lie, expected, named = CASES[case]
    sources[server].lie(pattern, lie)
    code, err, _ = fetch(make_manifest, artifact_server, sources, tmp_path, capsys)
    assert code == expected, err
    assert named in err, err


def test_a_blob_whose_bytes_are_not_its_digest_s_is_refused(
        sources: dict[str, HostileFront], pushed_image: TestImage,
        make_manifest: ManifestMaker, artifact_server: ArtifactServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    layer = pushed_image.shared_layers[0]
    data = bytearray((pushed_image.layout / "blobs/sha256" / layer[7:]).read_bytes())
    data[len(data) // 2] ^= 1  # the same size, one bit changed
    sources["registry"].lie(f"/v2/{TEST_REPOSITORY}/blobs/{layer}",
                            Lie(200, {"Content-Type": "application/octet-stream"}, bytes(data)))
    code, err, bundle = fetch(make_manifest, artifact_server, sources, tmp_path, capsys)
    assert code == 3 and "digest mismatch" in err and layer in err, err
    assert not (bundle / "images/blobs/sha256" / layer[7:]).exists()


def test_a_sha512_of_the_right_digest_naming_another_file_is_refused(
        sources: dict[str, HostileFront], make_manifest: ManifestMaker,
        artifact_server: ArtifactServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The digest is the agent's own: only the name says it is another file's checksum,
    # which agents would then refuse (they read the name too).
    def renamed(_path: str) -> bytes:
        digest = hashlib.sha512((artifact_server.root / AGENT).read_bytes()).hexdigest()
        return f"{digest}  filebeat-9.0.0-linux-x86_64.tar.gz\n".encode()
    sources["artifacts"].lie(f"/downloads/{AGENT}.sha512",
                             Lie(200, {"Content-Type": "text/plain"}, renamed))
    code, err, bundle = fetch(make_manifest, artifact_server, sources, tmp_path, capsys)
    assert code == 3, err
    assert f"{Path(AGENT).name}.sha512: names 'filebeat-9.0.0-linux-x86_64.tar.gz'" in err, err
    assert "the checksum of another file" in err
    assert not list((bundle / "downloads").rglob(Path(AGENT).name + "*"))


def test_a_token_answer_nested_deep_is_a_server_error(
        registry: DockerRegistry, pushed_image: TestImage, artifact_server: ArtifactServer,
        sources: dict[str, HostileFront], make_manifest: ManifestMaker, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The registry asks for a token from a realm that answers 100,000 levels of [.
    realm = sources["epr"].url + "/token"
    sources["registry"].lie("/v2/*", Lie(401, {"WWW-Authenticate":
                                               f'Bearer realm="{realm}",service="x"'}, b""))
    sources["epr"].lie("/token*", Lie(200, {"Content-Type": "application/json"},
                                      nested_json()))
    code, err, _ = fetch(make_manifest, artifact_server, sources, tmp_path, capsys)
    assert code == 1 and "/token" in err and "nested deeper" in err, err


def test_honest_fronts_change_nothing(sources: dict[str, HostileFront],
                                      make_manifest: ManifestMaker,
                                      artifact_server: ArtifactServer, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    # The control: the same fetch through the fronts, with no lie, succeeds.
    code, err, bundle = fetch(make_manifest, artifact_server, sources, tmp_path, capsys)
    assert code == 0, err
    sha = hashlib.sha512((bundle / "downloads" / AGENT).read_bytes()).hexdigest()
    assert sha in (bundle / "SHA512SUMS").read_text()


# -- artifacts.security.elastic.co: Elastic Defend's manifest and artifacts -----------------

DEFEND_MANIFEST = "/downloads/endpoint/manifest/artifacts-9.0.0.zip"
DEFEND_CASES: dict[str, tuple[str, Lie, int, str]] = {
    "Defend manifest announces an absurd size": (
        DEFEND_MANIFEST, Lie(200, {"Content-Type": "application/zip",
                                   "Content-Length": str(1 << 40)}, b"PK"), 1,
        "artifacts-9.0.0.zip: the server announces 1099511627776 bytes, more than the"),
    "Defend manifest: HTML with 200": (
        DEFEND_MANIFEST, Lie(200, {"Content-Type": "text/html"},
                             b"<html>captive portal</html>"), 1,
        "artifacts-9.0.0.zip: the server answered an HTML page"),
    "Defend artifact announces an absurd size": (
        "/downloads/endpoint/artifacts/*", Lie(200, {"Content-Type": "application/octet-stream",
                                                     "Content-Length": str(1 << 40)}, b"x"),
        1, "production-rules-linux-v1/"),
    "Defend artifact: HTML with 200": (
        "/downloads/endpoint/artifacts/*", Lie(200, {"Content-Type": "text/html"},
                                               b"<html>captive portal</html>"), 1,
        "production-rules-linux-v1/"),
}


@pytest.mark.parametrize("case", list(DEFEND_CASES))
def test_a_hostile_answer_about_elastic_defend_is_refused(
        case: str, sources: dict[str, HostileFront], defend_server: DefendServer,
        make_manifest: ManifestMaker, artifact_server: ArtifactServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    pattern, lie, expected, named = DEFEND_CASES[case]
    defend_server.publish("9.0.0", "1.0.137", {"production-rules-linux-v1": b"rule\n" * 900})
    front = HostileFront(defend_server.url)
    front.start()
    try:
        front.lie(pattern, lie)
        manifest = make_manifest(platforms={"arch": ["x86_64"]}, integrations=["nginx"],
                                 security={"endpoint_artifacts": ["9.0.0"]},
                                 sources={"registry": sources["registry"].url,
                                          "artifacts": sources["artifacts"].url + "/downloads/",
                                          "epr": sources["epr"].url + "/",
                                          "security": front.url + "/"})
        for item in make_plan(load_manifest(manifest)).artifacts:
            artifact_server.publish(item.path, 20_000)
        bundle = tmp_path / "bundle"
        before = tree(tmp_path, leave_out=bundle)
        code = main(["fetch", str(manifest), "-o", str(bundle), "--quiet"])
        err = capsys.readouterr().err
    finally:
        front.stop()
    assert front.asked, "the fetch never asked the security server"
    assert code == expected, err
    assert named in err, err
    assert ("announces 1099511627776 bytes" if "size" in case
            else "the server answered an HTML page") in err, err
    assert "Traceback" not in err
    assert tree(tmp_path, leave_out=bundle) == before, "something was written outside the bundle"
    assert not (bundle / "SHA512SUMS").exists()
    # A verified manifest may stay in .airgap-next/ for the re-run; no refused artifact does.
    assert not [p for p in bundle.rglob("*") if p.is_file()
                and "security/downloads/endpoint/artifacts/" in p.as_posix()]
