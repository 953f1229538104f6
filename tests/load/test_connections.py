"""``airgap serve`` under slow clients and many connections: it keeps answering.

The server runs as a person runs it (``airgap serve`` in a process of its own, with a
low open-file limit where the test says so); the clients are raw sockets that send their
headers slowly or not at all, and httpx for the requests that must still be answered.
"""

from __future__ import annotations

import contextlib
import re
import resource
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airgap.errors import UsageError
from airgap.load.connections import Limits, connection_cap
from airgap.load.serve import ServeSettings
from tests.peers.serving import BackgroundArtifactServer, serve, stop
from tests.peers.tls import make_certificate
from tests.reporting import RecordingReporter

AGENT = "beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "downloads"
    (root / AGENT).parent.mkdir(parents=True)
    (root / AGENT).write_bytes(b"agent" * 1000)
    return root


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


BIG = "beats/elastic-agent/big.tar.gz"
BIG_SIZE = 64 << 20  # far more than the kernel's buffers on both sides hold


def stalled_reader(port: int, path: str, tls: ssl.SSLContext | None = None) -> socket.socket:
    """A client that asks for ``path``, takes the first bytes of the answer, then reads
    nothing more (a small receive window, so the server's side fills up soon)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
    sock.sendall(f"GET /downloads/{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    sock.settimeout(10)
    assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    return sock


def read_to_the_end(sock: socket.socket, within: float) -> tuple[int, bool]:
    """The bytes still to come, and whether the server ended the connection."""
    sock.settimeout(within)
    total = 0
    try:
        while chunk := sock.recv(1 << 20):
            total += len(chunk)
    except TimeoutError:
        return total, False
    except OSError:
        return total, True  # reset
    return total, True


@pytest.fixture
def big_tree(tree: Path) -> Path:
    with (tree / BIG).open("wb") as big:
        big.truncate(BIG_SIZE)
    return tree


@pytest.mark.parametrize("scheme", ["http", "https"])  # sendfile; TLS records written
def test_a_client_that_stops_reading_is_cut_off(big_tree: Path, tmp_path: Path,
                                                scheme: str) -> None:
    tls, options = None, []
    if scheme == "https":
        cert, key = make_certificate(tmp_path, name="serve", common_name="127.0.0.1")
        tls = ssl.create_default_context(cafile=str(cert))
        options = ["--tls-cert", str(cert), "--tls-key", str(key)]
    process, port = serve(big_tree, "--send-timeout", "1.5", "--keepalive-timeout", "30",
                          *options)
    try:
        sock = stalled_reader(port, BIG, tls)
        time.sleep(5)  # reads nothing: the server must give up within 1.5 s and a tick
        started = time.monotonic()
        rest, ended = read_to_the_end(sock, 10)
        sock.close()
        assert ended, "the server still holds the connection of a client that stopped reading"
        assert rest < BIG_SIZE // 2, f"{rest} bytes came after the stall: never cut off"
        assert time.monotonic() - started < 5
        # The server goes on answering others, the same file in full.
        with httpx.stream("GET", f"{scheme}://127.0.0.1:{port}/downloads/{BIG}",
                          verify=tls or True) as answer:
            assert sum(len(chunk) for chunk in answer.iter_bytes()) == BIG_SIZE
    finally:
        err = stop(process)
    assert "1 connection(s) failed: 1 timed out: the client took none of its answer " \
        "for 1.5 s" in err
    assert "Traceback" not in err


def test_a_client_that_reads_slowly_but_steadily_is_not_cut_off(big_tree: Path) -> None:
    process, port = serve(big_tree, "--send-timeout", "1")
    try:
        sock = stalled_reader(port, BIG)
        received = 4096
        until = time.monotonic() + 4  # four send timeouts, a little taken every 0.3 s
        while time.monotonic() < until:
            received += len(sock.recv(16384))
            time.sleep(0.3)
        sock.settimeout(30)
        while received < BIG_SIZE:  # then the rest, at full speed
            chunk = sock.recv(1 << 20)
            assert chunk, f"cut off after {received} bytes"
            received += len(chunk)
        sock.close()
    finally:
        err = stop(process)
    assert "failed" not in err, err


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


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_client_that_hangs_up_mid_answer_is_logged_as_aborted(
        big_tree: Path, tmp_path: Path, scheme: str) -> None:
    tls, options = None, []
    if scheme == "https":  # Python's sendfile fallback turns the hang-up into another error
        cert, key = make_certificate(tmp_path, name="serve", common_name="127.0.0.1")
        tls = ssl.create_default_context(cafile=str(cert))
        options = ["--tls-cert", str(cert), "--tls-key", str(key)]
    process, port = serve(big_tree, *options)
    try:
        sock = stalled_reader(port, BIG, tls)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, with most of the answer still to come
        with httpx.stream("GET", f"{scheme}://127.0.0.1:{port}/downloads/{BIG}",
                          verify=tls or True) as answer:
            assert sum(len(chunk) for chunk in answer.iter_bytes()) == BIG_SIZE
    finally:
        err = stop(process)
    requests = [line for line in err.splitlines() if f"GET /downloads/{BIG} " in line]
    assert len(requests) == 2, err
    assert requests[0].endswith('" aborted -'), requests[0]
    assert requests[1].endswith(f'" 200 {BIG_SIZE}'), requests[1]
    # A reset or a broken pipe, as the kernel tells it; over TLS behind an AttributeError.
    assert re.search(r"1 connection\(s\) failed: 1 closed by the client "
                     r"\((BrokenPipe|ConnectionReset|Connection)Error\)", err), err
    assert "AttributeError" not in err
    assert "Traceback" not in err


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
