"""airgap load on the isolated side, with the real dockerd and docker-registry."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from airgap.cli import main
from airgap.load.engine import LoadStopped, StreamGate, connect, load_image
from airgap.load.serve import ServeSettings
from tests.carry.media import btrfs, shares_blocks
from tests.conftest import REGISTRY_CREDENTIALS, TEST_REPOSITORY, docker
from tests.medium import add_mac_and_windows_files, apple_double
from tests.peers.gpgkeys import SigningKey
from tests.peers.images import TestImage
from tests.peers.net import free_port
from tests.peers.processes import Dockerd, DockerRegistry
from tests.peers.serving import BackgroundArtifactServer
from tests.peers.tls import make_certificate
from tests.reporting import RecordingReporter
from tests.terminal import in_pipe

REFERENCE = f"docker.elastic.co/{TEST_REPOSITORY}:9.0.0"
ELASTIC = "46095ACC8548582C1A2699A9D27D666CD88E42B4"
AGENT = "beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key_file = make_certificate(tmp_path, name="tls", common_name="package-registry.test")
    key_file.chmod(0o644)  # the registry runs as uid 1000 in its container
    return cert, key_file


def test_load_docker_puts_the_engines_platform_in_the_engine(
        golden_bundle: Path, engine: Dockerd, pushed_image: TestImage,
        operator_key: Path) -> None:
    assert main(["load", str(golden_bundle), "--docker", "--tag", "epr.local/registry:9.0.0",
                 "--trust-key", str(operator_key), "--quiet"]) == 0
    info = json.loads(docker(engine, "image", "inspect", REFERENCE).stdout)[0]
    engine_arch = docker(engine, "version", "--format", "{{.Server.Arch}}").stdout.strip()
    assert info["Architecture"] == engine_arch
    # The engine is shared by the session; other tests may have tagged the same image too.
    assert {REFERENCE, "epr.local/registry:9.0.0"} <= set(info["RepoTags"])
    manifest = json.loads((golden_bundle / "images/blobs/sha256" /
                           pushed_image.manifests[f"linux/{engine_arch}"][7:]).read_text())
    assert info["Id"] == manifest["config"]["digest"]
    assert len(stored_layers(engine)) >= len(manifest["layers"])


def test_load_run_starts_the_registry_and_waits_for_health(golden_bundle: Path,
                                                           engine: Dockerd,
                                                           operator_key: Path) -> None:
    port = free_port()
    assert main(["load", str(golden_bundle), "--docker", "--run", "--network", "host",
                 "--port", str(port), "--trust-key", str(operator_key), "--quiet"]) == 0
    assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
    state = json.loads(docker(engine, "inspect", "package-registry").stdout)[0]
    assert state["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert f"EPR_ADDRESS=0.0.0.0:{port}" in state["Config"]["Env"]
    # The image's own check asks port 8080; airgap's asks where the registry listens.
    assert state["Config"]["Healthcheck"]["Test"][-1] == f"http://localhost:{port}/health"
    assert state["State"]["Health"]["Status"] == "healthy"
    # A second run refuses to clobber it unless asked.
    assert main(["load", str(golden_bundle), "--run", "--network", "host", "--port",
                 str(port), "--quiet", "--skip-verify"]) == 2
    assert main(["load", str(golden_bundle), "--run", "--network", "host", "--port",
                 str(port), "--quiet", "--skip-verify", "--replace"]) == 0


def test_load_run_with_tls_answers_https_with_the_given_certificate(
        golden_bundle: Path, engine: Dockerd, tmp_path: Path, operator_key: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    assert main(["load", str(golden_bundle), "--docker", "--run", "--network", "host",
                 "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key),
                 "--tls-min-version", "1.2", "--trust-key", str(operator_key),
                 "--quiet"]) == 0
    trusted = ssl.create_default_context(cafile=str(cert))
    assert httpx.get(f"https://127.0.0.1:{port}/health", verify=trusted).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.1:{port}/health")  # the system CAs do not know it
    state = json.loads(docker(engine, "inspect", "package-registry").stdout)[0]
    env = state["Config"]["Env"]
    assert "EPR_TLS_MIN_VERSION=1.2" in env and "EPR_TLS_CERT=/etc/airgap/tls/cert.pem" in env
    assert state["Config"]["Healthcheck"]["Test"][-2:] == [
        "--insecure", f"https://localhost:{port}/health"]
    assert state["State"]["Health"]["Status"] == "healthy"


def test_replace_with_options_that_do_not_go_together_keeps_the_running_registry(
        golden_bundle: Path, engine: Dockerd, tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    port = free_port()
    assert main(["load", str(golden_bundle), "--docker", "--run", "--network", "host",
                 "--port", str(port), "--quiet", "--skip-verify"]) == 0
    assert main(["load", str(golden_bundle), "--run", "--replace", "--network", "host",
                 "--port", str(port), "--tls-cert", str(cert), "--quiet",
                 "--skip-verify"]) == 2
    assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
    with socket.socket() as taken:  # another port, held by something else
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["load", str(golden_bundle), "--run", "--replace", "--network", "host",
                     "--port", str(taken.getsockname()[1]), "--quiet", "--skip-verify"]) == 2
    assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200


def test_a_port_in_use_is_refused_before_anything_starts(
        golden_bundle: Path, engine: Dockerd, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["load", str(golden_bundle), "--docker", "--run", "--network", "host",
                     "--port", str(port), "--quiet", "--skip-verify"]) == 2
    assert f"port {port} is in use" in capsys.readouterr().err
    assert docker(engine, "ps", "-aq").stdout.strip() == ""


def test_a_registry_that_cannot_start_is_reported_not_waited_for(
        golden_bundle: Path, engine: Dockerd, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    started = time.monotonic()
    assert main(["load", str(golden_bundle), "--docker", "--run", "--network", "host",
                 "--port", str(free_port()), "--tls-cert", str(cert), "--tls-key", str(key),
                 "--quiet", "--skip-verify"]) == 1
    assert time.monotonic() - started < 60, "waited for the health timeout"
    err = capsys.readouterr().err
    assert "the package registry container stopped" in err or "keeps restarting" in err, err


def stored_layers(engine: Dockerd) -> set[str]:
    """The layers the engine has stored (vfs), loaded images or not."""
    layerdb = engine.root / "data" / "image" / "vfs" / "layerdb" / "sha256"
    return {p.name for p in layerdb.iterdir()} if layerdb.is_dir() else set()


# The image streams to the engine while the bundle is verified: a damaged layer is also
# caught on its way out, a damaged binary only by the verification.
@pytest.mark.parametrize("damaged", ["largest image blob", "agent binary"])
def test_tampered_bundle_is_refused_before_anything_is_loaded(
        golden_bundle: Path, engine: Dockerd, tmp_path: Path, damaged: str,
        operator_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    target = bundle / "downloads" / AGENT if damaged == "agent binary" else \
        max((bundle / "images/blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[1000] ^= 1
    target.write_bytes(bytes(data))
    layers = stored_layers(engine)
    artifacts = tmp_path / "served"
    assert main(["load", str(bundle), "--docker", "--artifacts", str(artifacts),
                 "--trust-key", str(operator_key)]) == 3
    err = capsys.readouterr().err
    assert "failed verification: nothing was loaded" in err
    assert target.name in err
    assert docker(engine, "image", "ls", "-aq").stdout.strip() == ""
    assert stored_layers(engine) == layers
    assert not artifacts.exists()


def test_skip_verify_still_stops_a_damaged_layer_on_its_way_to_the_engine(
        golden_bundle: Path, engine: Dockerd, pushed_image: TestImage, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    layer = bundle / "images/blobs/sha256" / pushed_image.shared_layers[0].removeprefix("sha256:")
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 1
    layer.write_bytes(bytes(data))
    assert main(["load", str(bundle), "--docker", "--skip-verify", "--quiet"]) == 3
    assert "does not match its digest" in capsys.readouterr().err
    assert docker(engine, "image", "ls", "-q").stdout.strip() == ""


def test_load_registry_pushes_every_platform_and_skips_what_is_there(
        golden_bundle: Path, tmp_path_factory: pytest.TempPathFactory,
        docker_config: Callable[..., Path], operator_key: Path) -> None:
    registry = DockerRegistry(tmp_path_factory.mktemp("push-registry"),
                              credentials=REGISTRY_CREDENTIALS, access_log=True).start()
    try:
        target = f"{registry.host}/mirror"
        trust = ["--trust-key", str(operator_key)]
        assert main(["load", str(golden_bundle), "--registry", target, "--insecure",
                     *trust, "--quiet"]) == 1  # no credentials yet: refused
        docker_config({registry.host: REGISTRY_CREDENTIALS})
        assert main(["load", str(golden_bundle), "--registry", target, "--insecure",
                     *trust, "--quiet"]) == 0
        authfile = Path(str(docker_config({registry.host: REGISTRY_CREDENTIALS})))
        raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                              "--authfile", str(authfile),
                              f"docker://{target}/{TEST_REPOSITORY}:9.0.0"],
                             capture_output=True, check=True).stdout
        description = json.loads((golden_bundle / "bundle.json").read_text())
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == description["image"]["digest"]
        for arch in ("amd64", "arm64"):
            subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--authfile",
                            str(authfile), "--override-arch", arch,
                            f"docker://{target}/{TEST_REPOSITORY}:9.0.0"],
                           capture_output=True, check=True)
        uploads = [r for r in registry.requests() if r[0] in ("POST", "PATCH", "PUT")
                   and "/blobs/uploads/" in r[1]]
        assert uploads, "the first push sent no blob"
        before = len(registry.requests())
        assert main(["load", str(golden_bundle), "--registry", target, "--insecure",
                     "--quiet", "--skip-verify"]) == 0
        again = registry.requests()[before:]
        # Before verifying, load starts one upload and cancels it: the credentials may
        # push. No blob is sent again.
        uploads = [r[0] for r in again if "/blobs/uploads/" in r[1]]
        assert uploads == ["POST", "DELETE"], again
        assert [r for r in again if r[0] == "HEAD" and "/blobs/" in r[1]]
    finally:
        registry.stop()


def test_load_config_writes_settings_that_parse(golden_bundle: Path, tmp_path: Path,
                                               operator_key: Path) -> None:
    out = tmp_path / "settings"
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n")
    assert main(["load", str(golden_bundle), "--config", str(out), "--registry-url",
                 "https://epr.corp.example:8443", "--artifacts-url",
                 "https://files.corp.example/downloads", "--ca-cert", str(ca), "--quiet",
                 "--trust-key", str(operator_key)]) == 0
    kibana = yaml.safe_load((out / "kibana.yml").read_text())
    assert kibana == {"xpack.fleet.isAirGapped": True,
                      "xpack.fleet.registryUrl": "https://epr.corp.example:8443",
                      "xpack.fleet.packageVerification.gpgKeyPath":
                          "/etc/kibana/GPG-KEY-elasticsearch"}
    assert (out / "kibana.env").read_text() == "NODE_EXTRA_CA_CERTS=/etc/kibana/certs/ca.pem\n"
    agent = yaml.safe_load((out / "elastic-agent.yml").read_text())
    assert agent == {"agent.download.sourceURI": "https://files.corp.example/downloads/"}
    assert (out / "agent-binary-source.txt").read_text().strip() == \
        "https://files.corp.example/downloads/"
    key = out / "elastic-agent-upgrade-keys" / "default.pgp"
    assert key.stat().st_mode & 0o777 == 0o600
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    imported = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import",
                               "--import-options", "show-only", "--with-colons", str(key)],
                              capture_output=True, text=True, check=True).stdout
    assert f"fpr:::::::::{ELASTIC}:" in imported
    readme = (out / "README.md").read_text()
    assert readme.index("package registry, then the stack") < readme.index("Fleet Server")


def test_artifacts_served_for_an_elastic_agent_style_download(
        golden_bundle: Path, signer: SigningKey, tmp_path: Path, operator_key: Path) -> None:
    served = tmp_path / "artifact-registry"
    (served / "beats/elastic-agent").mkdir(parents=True)
    (served / "beats/elastic-agent/older-8.17.0.tar.gz").write_bytes(b"kept")
    trust = ["--trust-key", str(operator_key)]
    assert main(["load", str(golden_bundle), "--artifacts", str(served), *trust,
                 "--quiet"]) == 0
    assert (served / "beats/elastic-agent/older-8.17.0.tar.gz").read_bytes() == b"kept"
    # A copy: what happens on the served side never changes the bundle.
    assert not (served / AGENT).samefile(golden_bundle / "downloads" / AGENT)
    assert (served / AGENT).stat().st_nlink == 1
    with BackgroundArtifactServer(ServeSettings(root=served, port=0)) as server:
        base = server.source_uri
        body = httpx.get(base + AGENT).content
        checksum = httpx.get(base + AGENT + ".sha512").text.split()
        signature = httpx.get(base + AGENT + ".asc").content
        assert checksum == [hashlib.sha512(body).hexdigest(), Path(AGENT).name]
        (tmp_path / "f").write_bytes(body)
        (tmp_path / "f.asc").write_bytes(signature)
        assert subprocess.run(["gpgv", "--keyring", str(signer.home / "pubring.kbx"),
                               str(tmp_path / "f.asc"), str(tmp_path / "f")],
                              capture_output=True).returncode == 0
        ranged = httpx.get(base + AGENT, headers={"Range": "bytes=100-"})
        assert ranged.status_code == 206 and ranged.content == body[100:]
        assert httpx.head(base + AGENT).headers["content-length"] == str(len(body))
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /downloads/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")
            answer = sock.recv(65536)
        assert b"root:" not in answer and answer.split(b" ")[1] in (b"400", b"403", b"404")
    # A second load finds everything in place.
    assert main(["load", str(golden_bundle), "--artifacts", str(served), *trust,
                 "--quiet"]) == 0


def test_nothing_to_do_is_a_usage_error(golden_bundle: Path) -> None:
    assert main(["load", str(golden_bundle)]) == 2
    assert main(["load", str(golden_bundle), "--config", "/tmp/x"]) == 2


def test_a_tag_without_a_tag_part_gets_latest_as_docker_tag_does(
        golden_bundle: Path, engine: Dockerd, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", str(golden_bundle), "--docker", "--tag", "epr.local/registry",
                 "--quiet", "--skip-verify"]) == 0
    info = json.loads(docker(engine, "image", "inspect", REFERENCE).stdout)[0]
    assert "epr.local/registry:latest" in info["RepoTags"]
    assert main(["load", str(golden_bundle), "--docker", "--tag", "Bad Name",
                 "--quiet"]) == 2
    assert "--tag 'Bad Name': not an image name Docker accepts" in capsys.readouterr().err


REGISTRY_FORM = "HOST[:PORT][/NAMESPACE], like registry.corp:5000/elastic"


@pytest.mark.parametrize(("options", "message"), [
    (["--config", "cfg", "--registry-url", "epr.corp:8080", "--artifacts-url",
      "https://files.corp/downloads/"], "--registry-url 'epr.corp:8080' is not an http"),
    (["--registry", "registry.corp:500O/elastic"], REGISTRY_FORM),
    (["--registry", "registry.corp:99999"], REGISTRY_FORM),
    (["--registry", "\u2488.example/elastic"], REGISTRY_FORM),
    (["--run", "--tls-min-version", "1.2"], "--tls-min-version needs --tls-cert"),
    (["--tag", "x:"], "not an image name Docker accepts"),
])
def test_options_that_cannot_work_are_refused_before_any_work(
        golden_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        options: list[str], message: str) -> None:
    served = tmp_path / "served"
    args = [o.replace("cfg", str(tmp_path / "cfg")) for o in options]
    assert main(["load", str(golden_bundle), "--artifacts", str(served), *args]) == 2
    assert message in capsys.readouterr().err
    assert not served.exists(), "work was done before the options were checked"


def test_quiet_hides_progress_not_warnings(golden_bundle: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "airgap", "load", str(golden_bundle),
                             "--skip-verify", "--artifacts", str(tmp_path / "served"),
                             "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--skip-verify: the bundle is NOT being checked" in result.stderr


def test_skip_verify_on_a_damaged_description_is_a_message(
        golden_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    (bundle / "bundle.json").write_text('{"format": 1}\n')
    assert main(["load", str(bundle), "--skip-verify", "--artifacts",
                 str(tmp_path / "served"), "--quiet"]) == 3  # a damaged bundle
    err = capsys.readouterr().err
    assert "bundle.json is damaged" in err and "airgap verify" in err


def test_artifacts_never_follow_a_symbolic_link_out_of_the_bundle(
        golden_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for agents\n")
    (bundle / "downloads" / "beats" / "elastic-agent" / "x.tar.gz").symlink_to(secret)
    served = tmp_path / "served"
    assert main(["load", str(bundle), "--skip-verify", "--artifacts", str(served),
                 "--quiet"]) == 0
    assert not (served / "beats" / "elastic-agent" / "x.tar.gz").exists()
    assert (served / AGENT).is_file()


def test_finders_files_are_never_laid_out_for_the_agents(golden_bundle: Path, tmp_path: Path,
                                                         operator_key: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    counts = add_mac_and_windows_files(bundle)
    (bundle / "packages" / "nginx" / "._x.zip").write_bytes(apple_double())
    served = tmp_path / "served"
    done = in_pipe("load", str(bundle), "--artifacts", str(served), "--trust-key",
                   str(operator_key))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{counts['appledouble'] + 1} AppleDouble files" in " ".join(done.stderr.split())
    assert (served / AGENT).is_file()
    laid_out = [p.relative_to(served).as_posix() for p in served.rglob("*")]
    assert not [p for p in laid_out if "._" in p or "DS_Store" in p or "Trashes" in p]
    # --skip-verify: a file named like Finder's, whatever it holds, is not laid out either
    (bundle / "downloads" / "beats" / "._fake.tar.gz").write_bytes(b"a payload")
    skipped = in_pipe("load", str(bundle), "--skip-verify", "--artifacts", str(served))
    assert skipped.returncode == 0, skipped.stderr
    assert "._fake.tar.gz: named like a file a medium's system adds; not installed" in \
        " ".join(skipped.stderr.split())
    assert not list(served.rglob("._*"))


class _Counting(RecordingReporter):
    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def task_advanced(self, key: str, amount: int) -> None:
        self.sent += amount


@pytest.mark.parametrize("when", ["before", "at the end"])
def test_a_refused_gate_stops_the_stream_and_the_engine_keeps_nothing(
        golden_bundle: Path, engine: Dockerd, when: str) -> None:
    gate = StreamGate()
    if when == "before":
        gate.refuse()
    else:
        threading.Timer(1.0, gate.refuse).start()  # the stream waits at its last chunk
    reporter = _Counting()
    layers = stored_layers(engine)
    with pytest.raises(LoadStopped):
        load_image(connect(), golden_bundle, (), reporter, "linux/amd64", gate)
    total = sum(p.stat().st_size for p in (golden_bundle / "images/blobs/sha256").iterdir())
    if when == "before":
        assert reporter.sent < 64 << 10  # not the image: at most the first member
    else:
        assert 0 < reporter.sent < total
    assert reporter.outcomes[f"docker load {REFERENCE}"] == "failed"
    assert docker(engine, "image", "ls", "-aq").stdout.strip() == ""
    assert stored_layers(engine) == layers


def test_artifacts_are_copies_unless_hard_links_are_asked_for(
        golden_bundle: Path, tmp_path: Path, operator_key: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    trust = ["--trust-key", str(operator_key), "--quiet"]
    copied, linked = tmp_path / "copied", tmp_path / "linked"
    assert main(["load", str(bundle), "--artifacts", str(copied), *trust]) == 0
    (copied / AGENT).write_bytes(b"changed on the served side")
    assert main(["verify", str(bundle), *trust]) == 0, "the bundle changed with its copy"
    assert main(["load", str(bundle), "--artifacts", str(linked), "--hard-link", *trust]) == 0
    assert (linked / AGENT).samefile(bundle / "downloads" / AGENT)
    # A second load without --hard-link makes the linked tree copies again.
    assert main(["load", str(bundle), "--artifacts", str(linked), *trust]) == 0
    assert not (linked / AGENT).samefile(bundle / "downloads" / AGENT)


def test_artifacts_on_a_file_system_that_clones_are_clones(
        golden_bundle: Path, tmp_path: Path, operator_key: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with btrfs(tmp_path / "btrfs") as medium:
        bundle = medium / "bundle"
        shutil.copytree(golden_bundle, bundle)
        served = medium / "served"
        assert main(["load", str(bundle), "--artifacts", str(served), "--trust-key",
                     str(operator_key)]) == 0
        files = sum(1 for p in (bundle / "downloads").rglob("*") if p.is_file())
        assert f"{files} copied ({files} as reflinks)" in " ".join(
            capsys.readouterr().out.split())
        assert shares_blocks(served / AGENT)
        assert not (served / AGENT).samefile(bundle / "downloads" / AGENT)
        (served / AGENT).write_bytes(b"changed on the served side")
        assert main(["verify", str(bundle), "--trust-key", str(operator_key),
                     "--quiet"]) == 0, "the bundle changed with its clone"


def test_load_artifacts_of_an_unvouched_bundle_installs_nothing(
        golden_bundle: Path, tmp_path: Path, signer_public_key: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    served = tmp_path / "served"
    # The binaries are signed by a key in the bundle's keys/: nobody outside vouched.
    assert main(["load", str(golden_bundle), "--artifacts", str(served), "--quiet"]) == 3
    captured = capsys.readouterr()
    assert AGENT in captured.out and "--trust-signer" in captured.out
    assert not served.exists()
    # Naming that signer's key is enough for the binaries (the image does not leave).
    assert main(["load", str(golden_bundle), "--artifacts", str(served), "--trust-signer",
                 str(signer_public_key), "--quiet"]) == 0
    assert (served / AGENT).is_file()


@pytest.mark.parametrize("where", ["the bundle", "inside the bundle", "the bundle where files go",
                                   "a link into the bundle", "config inside the bundle"])
def test_a_destination_that_writes_into_the_bundle_is_refused(
        where: str, golden_bundle: Path, tmp_path: Path, operator_key: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "work" / "bundle"
    shutil.copytree(golden_bundle, bundle)
    option, destination = "--artifacts", bundle
    if where == "inside the bundle":
        destination = bundle / "downloads" / "served"
    elif where == "the bundle where files go":  # DIR/beats/... would be the bundle's files
        bundle = bundle.rename(tmp_path / "work" / "beats")
        destination = tmp_path / "work"
    elif where == "a link into the bundle":
        destination = tmp_path / "served"
        destination.mkdir()
        (destination / "beats").symlink_to(bundle / "downloads" / "beats")
    elif where == "config inside the bundle":
        option, destination = "--config", bundle / "settings"
    urls = ["--registry-url", "http://epr.corp:8080", "--artifacts-url", "http://files.corp/"] \
        if option == "--config" else []
    before = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    code = main(["load", str(bundle), option, str(destination), *urls,
                 "--trust-key", str(operator_key), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{option} {destination} would write into the bundle {bundle}" in err
    assert {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()} == before
    assert main(["verify", str(bundle), "--trust-key", str(operator_key), "--quiet"]) == 0


@pytest.mark.parametrize("trust", ["nothing", "the signer", "the operator"])
def test_load_config_writes_nothing_from_a_bundle_json_nobody_outside_vouches_for(
        trust: str, golden_bundle: Path, tmp_path: Path, operator_key: Path,
        signer_public_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # bundle.json rewritten to pin Kibana to another nginx, SHA512SUMS made to agree: only
    # the operator's SHA512SUMS.asc could tell, and --config would write that pin.
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    document = json.loads((bundle / "bundle.json").read_text())
    document["manifest"]["resolved"]["packages"] = {"nginx": "0.0.1"}
    (bundle / "bundle.json").write_text(json.dumps(document, indent=2))
    digest = hashlib.sha512((bundle / "bundle.json").read_bytes()).hexdigest()
    (bundle / "SHA512SUMS").write_text("".join(
        f"{digest}  bundle.json\n" if line.endswith("  bundle.json\n") else line
        for line in (bundle / "SHA512SUMS").read_text().splitlines(keepends=True)))
    keys = {"nothing": [], "the signer": ["--trust-signer", str(signer_public_key)],
            "the operator": ["--trust-key", str(operator_key)]}[trust]
    out = tmp_path / "settings"
    code = main(["load", str(bundle), "--config", str(out), "--registry-url",
                 "https://epr.corp:8443", "--artifacts-url", "https://files.corp/downloads/",
                 "--pin-packages", "--quiet", *keys])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 3, err
    assert not out.exists()
    if trust == "the operator":
        assert "SHA512SUMS.asc" in err and "bundle.json" in err
    else:
        assert "bundle.json: --config writes what it says" in err
        assert "give --trust-key with the public key that signed SHA512SUMS.asc" in err
