"""The HTTP client every download shares: TLS verification, extra CAs, proxies."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiohttp import web

from airgap.errors import NetworkError, UsageError
from airgap.net.transport import NetworkSettings, fetch_small, make_client
from tests.peers.files import Faults, storage_app
from tests.peers.net import BackgroundServer, free_port
from tests.peers.tls import make_certificate

QUICK = NetworkSettings(retries=1, read_timeout=5.0, backoff_initial=0.01)


def https_server(root: Path, certs: Path) -> tuple[BackgroundServer, Path]:
    """A loopback HTTPS file server with its own self-signed CA; returns it and the CA."""
    cert, key = make_certificate(certs, common_name=f"airgap test {certs.name}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    (root / "hello.txt").write_text(f"hello from {certs.name}\n")
    return BackgroundServer(storage_app(root, Faults()), ssl_context=context).start(), cert


@pytest.fixture
def two_sites(tmp_path: Path):  # type: ignore[no-untyped-def]
    servers = []
    for name in ("mirror", "proxy"):
        (tmp_path / name / "root").mkdir(parents=True)
        servers.append(https_server(tmp_path / name / "root", tmp_path / name))
    yield servers
    for server, _ in servers:
        server.stop()


def get(settings: NetworkSettings, url: str) -> bytes:
    with make_client(settings) as client:
        return fetch_small(client, url, settings).content


def test_tls_is_verified_by_default(two_sites) -> None:  # type: ignore[no-untyped-def]
    (mirror, _), _ = two_sites
    with pytest.raises(NetworkError, match="the TLS certificate of 127.0.0.1 is not trusted"):
        get(QUICK, mirror.url + "/hello.txt")


def test_every_given_ca_is_trusted_at_once(two_sites) -> None:  # type: ignore[no-untyped-def]
    (mirror, mirror_ca), (proxy, proxy_ca) = two_sites
    only_mirror = NetworkSettings(ca_certs=(mirror_ca,), retries=1)
    assert get(only_mirror, mirror.url + "/hello.txt") == b"hello from mirror\n"
    with pytest.raises(NetworkError, match="not trusted"):
        get(only_mirror, proxy.url + "/hello.txt")
    both = NetworkSettings(ca_certs=(mirror_ca, proxy_ca), retries=1)
    assert get(both, mirror.url + "/hello.txt") == b"hello from mirror\n"
    assert get(both, proxy.url + "/hello.txt") == b"hello from proxy\n"


def test_a_ca_file_that_is_not_pem_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(UsageError, match=f"cannot use CA certificate {bad}"):
        make_client(NetworkSettings(ca_certs=(bad,)))


def forward_proxy() -> tuple[BackgroundServer, list[str]]:
    """A plain-HTTP forward proxy stand-in: answers for any host, and logs what it was
    asked for, so a test can tell the request went through it."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(f"{request.host}{request.path}")
        return web.Response(text=f"proxied {request.host}{request.path}\n")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    return BackgroundServer(app).start(), seen


def test_http_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, seen = forward_proxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        body = get(QUICK, "http://artifacts.corp.example/downloads/x.tar.gz")
        assert body == b"proxied artifacts.corp.example/downloads/x.tar.gz\n"
        assert seen == ["artifacts.corp.example/downloads/x.tar.gz"]
    finally:
        proxy.stop()


def test_loopback_never_goes_through_the_proxy(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hello.txt").write_text("direct\n")
    server = BackgroundServer(storage_app(tmp_path, Faults())).start()
    try:
        dead = f"http://127.0.0.1:{free_port()}"
        monkeypatch.setenv("HTTP_PROXY", dead)
        monkeypatch.setenv("HTTPS_PROXY", dead)
        assert get(QUICK, server.url + "/hello.txt") == b"direct\n"
    finally:
        server.stop()
