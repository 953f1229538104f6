"""``airgap serve`` under slow clients and many connections: it keeps answering.

The server runs as a person runs it (``airgap serve`` in a process of its own, with a
low open-file limit where the test says so); the clients are raw sockets that send their
headers slowly or not at all, and httpx for the requests that must still be answered.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airgap.errors import UsageError
from airgap.load.connections import Limits, connection_cap
from airgap.load.serve import ServeSettings
from tests.conftest import start_airgap
from tests.peers.net import free_port, port_open, wait_until
from tests.peers.serving import BackgroundArtifactServer
from tests.peers.tls import make_certificate
from tests.reporting import RecordingReporter

AGENT = "beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "downloads"
    (root / AGENT).parent.mkdir(parents=True)
    (root / AGENT).write_bytes(b"agent" * 1000)
    return root


def serve(tree: Path, *options: str, files: int | None = None
          ) -> tuple[subprocess.Popen[str], int]:
    """``airgap serve TREE`` on a free port, optionally with an open-file limit of
    ``files``; returns once it answers."""
    port = free_port()

    def limit() -> None:
        if files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    process = start_airgap("serve", str(tree), "--port", str(port), *options,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit)
    try:
        wait_until(lambda: port_open(port), 30, "airgap serve listening")
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return process, port


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, then what the server wrote to stderr."""
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode in (0, 143), err
    return err


@contextlib.contextmanager
def slow_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that each send half a request line and then nothing."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /downloads/" + AGENT.encode()[:10])
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass  # a 503 or nothing, then the end
    except TimeoutError:
        return False
    except OSError:
        return True  # reset
    return True


def test_more_slow_clients_than_the_file_limit_allows_and_agents_are_still_answered(
        tree: Path) -> None:
    # 160 open files: a cap of (160 - 64) // 2 = 48 connections. 250 clients that never
    # finish their headers would have taken every descriptor and stopped the server.
    process, port = serve(tree, "--header-timeout", "3", files=160)
    try:
        with slow_clients(port, 250) as sockets:
            # Answered at all is what counts here (room is made at once at the cap:
            # test_at_the_cap_a_waiting_connection_makes_room); a loaded machine may be slow.
            for _ in range(10):
                answer = httpx.get(f"http://127.0.0.1:{port}/downloads/{AGENT}", timeout=30)
                assert answer.status_code == 200 and answer.content == b"agent" * 1000
            # Most slow clients already made room; the rest time out.
            assert all(closed_by_server(s, 6) for s in sockets[-20:])
    finally:
        err = stop(process)
    assert "Traceback" not in err, err[:2000]
    assert "connection(s) failed" in err and "had not sent its request" in err, err
    assert len(err) < 20_000, "one line per failed connection"


def test_a_client_that_sends_its_headers_slowly_is_cut_off(tree: Path) -> None:
    process, port = serve(tree, "--header-timeout", "1.5")
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        started = time.monotonic()
        closed = threading.Event()

        def dribble() -> None:  # a byte of a path every 0.2 s: never a complete request
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /downloads/")
                while not closed.is_set():
                    sock.sendall(b"a")
                    time.sleep(0.2)

        threading.Thread(target=dribble, daemon=True).start()
        assert closed_by_server(sock, 10)
        closed.set()
        assert 1.0 < time.monotonic() - started < 6
        sock.close()
    finally:
        err = stop(process)
    assert "timed out: no complete request within 1.5 s" in err
    assert "Traceback" not in err


def test_an_idle_keep_alive_connection_is_closed_quietly(tree: Path) -> None:
    process, port = serve(tree, "--keepalive-timeout", "1")
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive
            started = time.monotonic()
            assert closed_by_server(sock, 10)  # the answer, then the end
            assert time.monotonic() - started > 0.8
    finally:
        err = stop(process)
    assert "failed" not in err, err


def test_at_the_cap_a_waiting_connection_makes_room(tree: Path) -> None:
    process, port = serve(tree, "--max-connections", "5", "--header-timeout", "30")
    try:
        with slow_clients(port, 12):
            # Far from its header timeout, every slow client still holds its place...
            started = time.monotonic()
            answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            assert answer.status_code == 200
            assert time.monotonic() - started < 3  # ...until a request needs it
    finally:
        err = stop(process)
    assert "closed to make room: 5 connections open" in err


def test_the_server_header_names_no_version(tree: Path) -> None:
    with BackgroundArtifactServer(ServeSettings(tree, port=0)) as server:
        answer = httpx.get(server.source_uri + AGENT)
        missing = httpx.get(server.source_uri + "nothing-here")
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
            malformed = sock.recv(65536)
    for headers in (answer.headers, missing.headers):
        assert headers["server"] == "airgap", headers
    assert b" 400 " in malformed.split(b"\r\n", 1)[0], malformed[:200]
    assert b"aiohttp" not in malformed and b"Python" not in malformed, malformed[:300]


def test_tls_min_version_refuses_older_clients(tree: Path, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, name="serve", common_name="127.0.0.1")
    settings = ServeSettings(tree, port=0, tls_cert=cert, tls_key=key, tls_min_version="1.3")
    with BackgroundArtifactServer(settings) as server:
        modern = ssl.create_default_context(cafile=str(cert))
        assert httpx.get(server.url + "/health", verify=modern).status_code == 200
        old = ssl.create_default_context(cafile=str(cert))
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/health", verify=old)


def test_a_failed_handshake_is_counted_not_printed(tree: Path, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, name="serve", common_name="127.0.0.1")
    reporter = RecordingReporter()
    settings = ServeSettings(tree, port=0, tls_cert=cert, tls_key=key,
                             limits=Limits(header_timeout=1))
    with BackgroundArtifactServer(settings, reporter=reporter) as server:
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\n\r\n")  # plain HTTP to a TLS port
                closed_by_server(sock, 5)
    warnings = [m for kind, m in reporter.messages if kind == "warning"]
    assert warnings and all("connection(s) failed" in w for w in warnings), warnings
    assert sum(int(w.split(" ", 1)[0]) for w in warnings) == 5, warnings


def test_a_cap_above_the_file_limit_is_refused() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:  # no limit to keep below
        assert connection_cap(None) == 4096
        return
    assert connection_cap(None) <= max(1, (soft - 64) // 2)
    with pytest.raises(UsageError, match="open-file limit"):
        connection_cap(soft)
