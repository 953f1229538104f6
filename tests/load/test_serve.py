"""``airgap serve``: the artifact registry Elastic Agents upgrade from in the isolated network.

A real aiohttp server on 127.0.0.1 (port 0), real clients: httpx, curl, and raw sockets for
the escape attempts httpx would normalise away.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pexpect
import pytest
from cryptography.hazmat.primitives import serialization

from airgap.errors import UsageError
from airgap.load.serve import (
    ServeSettings,
    content_type_for,
    resolve_root,
    run_server,
    ssl_context_for,
)
from tests.conftest import DEFEND_ARTIFACTS
from tests.load.test_defend import endpoint_update
from tests.peers.net import free_port
from tests.peers.serving import BackgroundArtifactServer, serve, stop
from tests.peers.tls import make_certificate
from tests.reporting import RecordingReporter
from tests.terminal import at_terminal, in_pipe

AGENT_DIR = "beats/elastic-agent"
AGENT = "elastic-agent-9.0.0-linux-x86_64.tar.gz"
AGENT_PATH = f"{AGENT_DIR}/{AGENT}"
SECRET = b"top secret: must never leave the server\n"


@dataclass(frozen=True)
class Tree:
    root: Path  # the downloads tree that is served
    data: bytes  # the agent archive's bytes
    outside: Path  # a file next to, outside, the served root


def build_tree(root: Path, size: int = 300_000) -> bytes:
    """Elastic's layout: the archive, its ``.sha512`` (Elastic's format) and ``.asc``."""
    directory = root / AGENT_DIR
    directory.mkdir(parents=True)
    data = os.urandom(size)
    (directory / AGENT).write_bytes(data)
    (directory / f"{AGENT}.sha512").write_text(f"{hashlib.sha512(data).hexdigest()}  {AGENT}")
    (directory / f"{AGENT}.asc").write_text(
        "-----BEGIN PGP SIGNATURE-----\n\nnot checked here\n-----END PGP SIGNATURE-----\n")
    return data


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    root = tmp_path / "downloads"
    data = build_tree(root)
    outside = tmp_path / "secret.txt"
    outside.write_bytes(SECRET)
    return Tree(root, data, outside)


@pytest.fixture
def server(tree: Tree) -> Iterator[BackgroundArtifactServer]:
    with BackgroundArtifactServer(ServeSettings(tree.root, port=0)) as running:
        yield running


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """Send ``GET target`` exactly as written (no client normalisation); status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# -- what an agent does ----------------------------------------------------------------------


def test_agent_style_download_verifies(server: BackgroundArtifactServer, tree: Tree) -> None:
    assert server.source_uri == f"http://127.0.0.1:{server.port}/downloads/"
    with httpx.Client(base_url=server.source_uri) as client:
        archive = client.get(AGENT_PATH)
        checksum = client.get(f"{AGENT_PATH}.sha512")
        signature = client.get(f"{AGENT_PATH}.asc")
    for response in (archive, checksum, signature):
        assert response.status_code == 200
        assert "content-encoding" not in response.headers
    assert archive.content == tree.data
    assert int(archive.headers["content-length"]) == len(tree.data)
    hexdigest, name = checksum.text.split("  ")
    assert re.fullmatch(r"[0-9a-f]{128}", hexdigest)
    assert hexdigest == hashlib.sha512(archive.content).hexdigest()
    assert name == AGENT
    assert signature.text.startswith("-----BEGIN PGP SIGNATURE-----")


def test_curl_download(server: BackgroundArtifactServer, tree: Tree, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("needs curl")
    out = tmp_path / "curl" / AGENT
    subprocess.run(["curl", "-fsS", "--compressed", "--create-dirs", "-o", str(out),
                    server.source_uri + AGENT_PATH], check=True, timeout=30)
    assert out.read_bytes() == tree.data


def test_range_and_head(server: BackgroundArtifactServer, tree: Tree) -> None:
    size = len(tree.data)
    with httpx.Client(base_url=server.source_uri) as client:
        tail = client.get(AGENT_PATH, headers={"Range": "bytes=1000-"})
        head = client.get(AGENT_PATH, headers={"Range": "bytes=0-99"})
        meta = client.head(AGENT_PATH)
    assert tail.status_code == 206
    assert tail.headers["content-range"] == f"bytes 1000-{size - 1}/{size}"
    assert tail.content == tree.data[1000:]
    assert head.status_code == 206
    assert head.content == tree.data[:100]
    assert meta.status_code == 200
    assert meta.headers["content-length"] == str(size)
    assert meta.headers["content-type"] == "application/gzip"
    assert meta.content == b""


def test_if_modified_since(server: BackgroundArtifactServer) -> None:
    with httpx.Client(base_url=server.source_uri) as client:
        first = client.get(AGENT_PATH)
        again = client.get(AGENT_PATH,
                           headers={"If-Modified-Since": first.headers["last-modified"]})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize(("name", "expected"), [
    ("a.tar.gz", "application/gzip"), ("a.tgz", "application/gzip"),
    ("a.zip", "application/zip"), ("a.deb", "application/vnd.debian.binary-package"),
    ("a.rpm", "application/x-rpm"), ("a.tar.gz.sha512", "text/plain; charset=utf-8"),
    ("a.zip.asc", "application/pgp-signature"), ("a.zip.sig", "application/pgp-signature"),
    ("a.json", "application/json"), ("a.msi", "application/octet-stream"),
    ("a", "application/octet-stream"),
])
def test_content_types(server: BackgroundArtifactServer, tree: Tree, name: str,
                       expected: str) -> None:
    (tree.root / "types").mkdir(exist_ok=True)
    (tree.root / "types" / name).write_bytes(b"content")
    response = httpx.get(f"{server.source_uri}types/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == expected
    assert "content-encoding" not in response.headers
    assert content_type_for(name) == expected


def test_no_precompressed_sibling(server: BackgroundArtifactServer, tree: Tree) -> None:
    """A ``x.gz`` beside ``x`` must not be sent instead of ``x`` to a gzip-accepting client."""
    (tree.root / "plain.json").write_text('{"a": 1}')
    (tree.root / "plain.json.gz").write_bytes(b"\x1f\x8bnot the file")
    response = httpx.get(server.source_uri + "plain.json",
                         headers={"Accept-Encoding": "gzip, br"})
    assert "content-encoding" not in response.headers
    assert response.content == b'{"a": 1}'


def test_health_and_index(server: BackgroundArtifactServer) -> None:
    health = httpx.get(server.url + "/health")
    assert (health.status_code, health.text) == (200, "ok\n")
    index = httpx.get(server.url + "/")
    assert index.status_code == 200
    assert f"agent.download.sourceURI: {server.source_uri}" in index.text


# -- what must never be answered -------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "/downloads/../../etc/passwd",
    "/downloads/%2e%2e/%2e%2e/etc/passwd",
    "/downloads/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "/downloads/beats/../../secret.txt",
    "/downloads/beats/%2e%2e/%2e%2e/secret.txt",
    "/downloads/..%2f..%2fsecret.txt",
    "/downloads//etc/passwd",
    "/downloads/%2fetc%2fpasswd",
    "/downloads/beats/elastic-agent/../../../secret.txt",
])
def test_escapes_are_refused(server: BackgroundArtifactServer, target: str) -> None:
    status, body = raw_get(server.port, target)
    assert status in (400, 403, 404)
    assert SECRET not in body
    assert b"root:" not in body


def test_symlink_out_of_root_is_refused(server: BackgroundArtifactServer, tree: Tree) -> None:
    (tree.root / "beats" / "leak.txt").symlink_to(tree.outside)
    (tree.root / "beats" / "escape").symlink_to(tree.outside.parent, target_is_directory=True)
    (tree.root / "beats" / "inside.tar.gz").symlink_to(tree.root / AGENT_PATH)
    for target in ("/downloads/beats/leak.txt", "/downloads/beats/escape/secret.txt"):
        status, body = raw_get(server.port, target)
        assert status == 404
        assert SECRET not in body
    # A link that stays inside the tree is fine.
    assert httpx.get(server.source_uri + "beats/inside.tar.gz").content == tree.data


@pytest.mark.parametrize("path", ["", "beats", "beats/", "beats/elastic-agent/", "."])
def test_directories_are_not_listed(server: BackgroundArtifactServer, path: str) -> None:
    response = httpx.get(server.source_uri + path)
    assert response.status_code == 404
    assert AGENT not in response.text


def test_part_files_are_refused(server: BackgroundArtifactServer, tree: Tree) -> None:
    (tree.root / AGENT_DIR / f"{AGENT}.part").write_bytes(b"half")
    (tree.root / AGENT_DIR / "link.tar.gz").symlink_to(tree.root / AGENT_DIR / f"{AGENT}.part")
    for name in (f"{AGENT}.part", "link.tar.gz", "missing.tar.gz"):
        assert httpx.get(f"{server.source_uri}{AGENT_DIR}/{name}").status_code == 404


# -- settings --------------------------------------------------------------------------------


def test_bundle_serves_its_downloads(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    data = build_tree(bundle / "downloads")
    (bundle / "manifest.yaml").write_text("kind: Bundle\n")
    assert resolve_root(bundle) == (bundle / "downloads").resolve()
    with BackgroundArtifactServer(ServeSettings(bundle, port=0)) as server:
        assert httpx.get(server.source_uri + AGENT_PATH).content == data
        assert httpx.get(server.source_uri + "manifest.yaml").status_code == 404


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        resolve_root(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        resolve_root(tmp_path / "file")


def test_https(tree: Tree, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    trusted = ssl.create_default_context(cafile=str(cert))
    settings = ServeSettings(tree.root, port=0, tls_cert=cert, tls_key=key)
    with BackgroundArtifactServer(settings) as server:
        assert server.url.startswith("https://127.0.0.1:")
        with httpx.Client(verify=trusted) as client:
            response = client.get(server.source_uri + AGENT_PATH)
        assert response.content == tree.data
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.source_uri + AGENT_PATH, verify=ssl.create_default_context())


def test_tls_settings_are_checked(tree: Tree, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    (tmp_path / "other").mkdir()
    other_cert, _ = make_certificate(tmp_path / "other")
    assert ssl_context_for(ServeSettings(tree.root)) is None
    context = ssl_context_for(ServeSettings(tree.root, tls_cert=cert, tls_key=key))
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(UsageError, match="both"):
        ssl_context_for(ServeSettings(tree.root, tls_cert=cert))
    with pytest.raises(UsageError, match="both"):
        ssl_context_for(ServeSettings(tree.root, tls_key=key))
    with pytest.raises(UsageError, match="cannot read"):
        ssl_context_for(ServeSettings(tree.root, tls_cert=tmp_path / "missing.crt", tls_key=key))
    with pytest.raises(UsageError, match="certificate's"):
        ssl_context_for(ServeSettings(tree.root, tls_cert=other_cert, tls_key=key))
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(serialization.load_pem_private_key(key.read_bytes(), None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))
    with pytest.raises(UsageError, match="unencrypted"):
        ssl_context_for(ServeSettings(tree.root, tls_cert=cert, tls_key=encrypted))
    with pytest.raises(UsageError, match="both"), BackgroundArtifactServer(
            ServeSettings(tree.root, port=0, tls_cert=cert)):
        pass


@pytest.mark.parametrize("how", ["pipe", "terminal"])
def test_tls_min_version_without_a_certificate_is_a_usage_error(tree: Tree, how: str) -> None:
    port = free_port()
    args = ("serve", str(tree.root), "--port", str(port), "--tls-min-version", "1.3")
    if how == "pipe":
        result = in_pipe(*args, timeout=60)
        code, shown = result.returncode, result.stderr
        assert result.stdout == ""
    else:
        seen = at_terminal(*args, timeout=60)
        seen.assert_no_traceback()
        code, shown = seen.code, seen.text
    assert code == 2, shown
    assert "--tls-min-version needs --tls-cert and --tls-key" in shown
    assert "serving" not in shown
    with socket.socket() as probe:  # nothing was left listening
        assert probe.connect_ex(("127.0.0.1", port)) != 0


# -- load, logs, the blocking server ---------------------------------------------------------


def test_many_concurrent_downloads(server: BackgroundArtifactServer, tree: Tree) -> None:
    size = len(tree.data)
    rng = random.Random(1)
    ranges = [None if i % 5 == 0 else sorted(rng.sample(range(size), 2)) for i in range(50)]

    async def fetch_all() -> list[tuple[list[int] | None, httpx.Response]]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=server.source_uri, limits=limits,
                                     timeout=30) as client:
            async def one(span: list[int] | None) -> tuple[list[int] | None, httpx.Response]:
                headers = {} if span is None else {"Range": f"bytes={span[0]}-{span[1]}"}
                return span, await client.get(AGENT_PATH, headers=headers)
            return await asyncio.gather(*(one(span) for span in ranges))

    for span, response in asyncio.run(fetch_all()):
        if span is None:
            assert response.status_code == 200
            assert response.content == tree.data
        else:
            assert response.status_code == 206
            assert response.content == tree.data[span[0]:span[1] + 1]


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_access_log(tree: Tree) -> None:
    handler = ListHandler()
    access_log = logging.getLogger("tests.test_serve.access")
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False
    try:
        with BackgroundArtifactServer(ServeSettings(tree.root, port=0), access_log) as server:
            httpx.get(server.source_uri + AGENT_PATH, headers={"Range": "bytes=1000-"})
            raw_get(server.port, "/downloads/../secret.txt")
            httpx.head(server.source_uri + AGENT_PATH)
            deadline = time.monotonic() + 5
            while len(handler.lines) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        access_log.removeHandler(handler)
    assert handler.lines[0] == (f'127.0.0.1 "GET /downloads/{AGENT_PATH} HTTP/1.1" 206 '
                                f"{len(tree.data) - 1000}")
    assert re.fullmatch(r'127\.0\.0\.1 "GET \S+ HTTP/1\.1" 404 \S+', handler.lines[1])
    assert handler.lines[2] == f'127.0.0.1 "HEAD /downloads/{AGENT_PATH} HTTP/1.1" 200 -'


def test_port_in_use(tree: Tree) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=f"127.0.0.1:{port}"):
            run_server(ServeSettings(tree.root, port=port), RecordingReporter())
        with pytest.raises(UsageError, match=f"127.0.0.1:{port}"), BackgroundArtifactServer(
                ServeSettings(tree.root, port=port)):
            pass


def test_run_server_until_signal(tree: Tree) -> None:
    """The blocking server reports its sourceURI, serves, and returns on SIGINT."""
    answers: list[str] = []

    class StopWhenServing(RecordingReporter):
        def info(self, message: str) -> None:
            super().info(message)
            if message.startswith("agent.download.sourceURI: "):
                threading.Thread(target=probe_then_stop,
                                 args=(message.split(": ", 1)[1],)).start()

    def probe_then_stop(source_uri: str) -> None:
        try:
            answers.append(httpx.get(source_uri + AGENT_PATH + ".sha512").text)
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    reporter = StopWhenServing()
    run_server(ServeSettings(tree.root, port=0), reporter)
    infos = [message for kind, message in reporter.messages if kind == "info"]
    assert re.fullmatch(rf"serving {re.escape(str(tree.root.resolve()))} at "
                        r"http://127\.0\.0\.1:\d+/downloads/", infos[0])
    assert re.fullmatch(r"agent\.download\.sourceURI: http://127\.0\.0\.1:\d+/downloads/",
                        infos[1])
    assert answers == [(tree.root / f"{AGENT_PATH}.sha512").read_text()]


# -- strong ETags from the content, for Elastic Defend's endpoints ----------------------------


def test_every_file_has_a_strong_etag_from_its_content(server: BackgroundArtifactServer,
                                                       tree: Tree) -> None:
    url = server.source_uri + AGENT_PATH
    first = httpx.get(url)
    tag = first.headers["etag"]
    assert tag == f'"{hashlib.sha512(tree.data).hexdigest()}"'
    assert not tag.startswith("W/") and "-" not in tag  # what Endpoint takes
    assert httpx.head(url).headers["etag"] == tag
    ranged = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.headers["etag"] == tag


def test_if_none_match_is_answered_304_until_the_content_changes(
        server: BackgroundArtifactServer, tree: Tree) -> None:
    url = server.source_uri + AGENT_PATH
    tag = httpx.get(url).headers["etag"]
    again = httpx.get(url, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == tag
    listed = httpx.get(url, headers={"If-None-Match": f'"other", W/{tag}'})
    assert listed.status_code == 304  # If-None-Match compares weakly
    assert httpx.get(url, headers={"If-None-Match": "*"}).status_code == 304
    # The same bytes written anew (a new inode, a new mtime): the same tag.
    path = tree.root / AGENT_PATH
    copy = path.with_name("copy")
    shutil.copyfile(path, copy)
    copy.replace(path)
    assert httpx.get(url, headers={"If-None-Match": tag}).status_code == 304
    # Other bytes under the same name: a new tag, and the new bytes.
    path.write_bytes(b"a new manifest")
    changed = httpx.get(url, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.content == b"a new manifest"
    assert changed.headers["etag"] == f'"{hashlib.sha512(b"a new manifest").hexdigest()}"'


def test_if_range_resumes_only_the_same_bytes(server: BackgroundArtifactServer,
                                              tree: Tree) -> None:
    url = server.source_uri + AGENT_PATH
    tag = httpx.get(url).headers["etag"]
    same = httpx.get(url, headers={"Range": "bytes=100-", "If-Range": tag})
    assert same.status_code == 206 and same.content == tree.data[100:]
    other = httpx.get(url, headers={"Range": "bytes=100-", "If-Range": '"something-else"'})
    assert other.status_code == 200 and other.content == tree.data


def test_curl_sees_the_etag_and_a_304(server: BackgroundArtifactServer, tmp_path: Path) -> None:
    url = server.source_uri + AGENT_PATH
    headers = subprocess.run(["curl", "-sS", "-D", "-", "-o", str(tmp_path / "body"), url],
                             capture_output=True, text=True, check=True).stdout
    tag = re.search(r"(?im)^etag: (\S+)", headers)
    assert tag is not None
    status = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                             f"If-None-Match: {tag.group(1)}", url],
                            capture_output=True, text=True, check=True).stdout
    assert status == "304"


# -- a bundle: the binaries and Elastic Defend's artifacts at /downloads/ -----------------------


def test_a_bundle_is_served_with_defends_artifacts_beside_its_binaries(
        rich_bundle: Path, operator_key: Path) -> None:
    process, port = serve(rich_bundle, "--trust-key", str(operator_key))
    base = f"http://127.0.0.1:{port}"
    try:
        status, tag, got = endpoint_update(base)
        assert status == 200 and set(got) == set(DEFEND_ARTIFACTS)
        assert endpoint_update(base, tag)[0] == 304
        binary = httpx.get(f"{base}/downloads/{AGENT_PATH}")
        assert binary.status_code == 200
        assert binary.content == (rich_bundle / "downloads" / AGENT_PATH).read_bytes()
        assert httpx.get(f"{base}/downloads/bundle.json").status_code == 404
    finally:
        err = stop(process)
    assert f"serving {rich_bundle.resolve()}/downloads and {rich_bundle.resolve()}/security/" \
           f"downloads at {base}/downloads/" in err
    assert f"advanced.artifacts.global.base_url: {base}" in err
    assert f"verified {rich_bundle}: " in err and "operator signature: valid" in err


def test_a_bundle_served_at_a_terminal_says_where_defend_points(rich_bundle: Path,
                                                                operator_key: Path) -> None:
    port = free_port()

    def stop_it(child: pexpect.spawn) -> None:
        child.expect("base_url", timeout=60)
        child.sendintr()

    seen = at_terminal("serve", str(rich_bundle), "--port", str(port), "--trust-key",
                       str(operator_key), when=stop_it)
    seen.assert_no_traceback()
    assert seen.code == 0, seen.text
    assert f"advanced.artifacts.global.base_url: http://127.0.0.1:{port}" in \
        " ".join(seen.text.split())
