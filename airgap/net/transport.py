"""HTTP for every source: TLS, timeouts, retries with backoff, redirects, auth hooks.

One :class:`httpx.Client` per run, shared by the image, artifact and package downloads.
Redirects are followed here, not by httpx, so that credentials are only ever sent to the
origin they belong to: a blob redirected to a storage host gets no Authorization, and
credential headers a caller passes are dropped once a redirect leaves their origin.
"""

from __future__ import annotations

import email.utils
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpcore
import httpx

from airgap import __version__
from airgap.documents import DocumentError, parse_json
from airgap.errors import (
    AuthenticationError,
    NetworkError,
    NotFoundError,
    ServerResponseError,
    UsageError,
    setting,
)
from airgap.files import check_regular
from airgap.net.urls import host_port

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_REDIRECTS = 10
USER_AGENT = f"airgap/{__version__}"
# Headers that carry a secret: never sent past a redirect to another scheme, host or port.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

# httpcore reads a plain HTTP/1.1 body 64 KiB at a time, and every piece then goes
# through h11 and the hashing loop in Python. Reading up to 256 KiB at a time takes about
# a fifth less CPU per GiB received (bench/artifacts.py); 1 MiB gains nothing more and
# costs more memory per transfer. READ_NUM_BYTES is httpcore's own setting for this (a
# class attribute: if a later httpcore drops it, this does nothing). Over TLS a read
# returns about one 16 KiB record whatever the size asked, so this helps plain HTTP.
# airgap.net.body reads large bodies from the socket itself, READ_SIZE at a time too.
READ_SIZE = 256 << 10
httpcore.HTTP11Connection.READ_NUM_BYTES = READ_SIZE


@dataclass(frozen=True)
class NetworkSettings:
    """How to talk to servers. ``read_timeout`` is how long a stalled transfer may sit
    without a byte before it counts as failed (and is retried)."""

    ca_certs: tuple[Path, ...] = ()
    jobs: int = 8
    connect_timeout: float = 20.0
    read_timeout: float = 60.0
    retries: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    insecure: bool = False


class Auth(Protocol):
    """Credentials for one origin, applied per request."""

    def headers_for(self, url: httpx.URL) -> Mapping[str, str]:
        """Headers to send to ``url``: empty unless it is the origin they belong to."""

    def handle_challenge(self, response: httpx.Response) -> bool:
        """React to a 401 from the origin; True when the request is worth repeating
        (never for an answer from another origin)."""


class RetryableError(Exception):
    """A failure that may go away when tried again (connection, 5xx, 429, truncation);
    ``progressed`` when the attempt got some of the work done (bytes of a file)."""

    def __init__(self, message: str, retry_after: float | None = None,
                 progressed: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.progressed = progressed


class Reauthenticated(RetryableError):
    """A request whose body streams (and so cannot be sent twice) got a ``401``; fresh
    credentials are in place: start that upload over."""


def ssl_context(settings: NetworkSettings) -> ssl.SSLContext | bool:
    """System CAs plus every file of ``ca_certs``; no verification only when ``insecure``
    was asked for."""
    if settings.insecure:
        return False
    context = ssl.create_default_context()
    for path in settings.ca_certs:
        try:
            check_regular(path)  # a FIFO would block the read below for ever
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot use CA certificate {path}: {exc}; "
                             "give a PEM file of one or more certificates") from None
    return context


def make_client(settings: NetworkSettings) -> httpx.Client:
    """The client every download of a run shares."""
    timeout = httpx.Timeout(connect=settings.connect_timeout, read=settings.read_timeout,
                            write=settings.read_timeout, pool=None)
    limits = httpx.Limits(max_connections=settings.jobs * 2,
                          max_keepalive_connections=settings.jobs * 2)
    # trust_env: HTTP(S)_PROXY, ALL_PROXY and NO_PROXY are honoured, as by curl and
    # docker; the CA settings of the environment are not, since ``verify`` is our own
    # context. Loopback never goes through a proxy, as with Go's tools (docker, skopeo).
    loopback: dict[str, httpx.BaseTransport | None] = {
        "all://127.0.0.1": None, "all://localhost": None, "all://[::1]": None}
    return httpx.Client(verify=ssl_context(settings), timeout=timeout, limits=limits,
                        follow_redirects=False, headers={"User-Agent": USER_AGENT},
                        trust_env=True, mounts=loopback)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, settings: NetworkSettings, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; a server's Retry-After wins when given."""
    if retry_after is not None:
        return min(retry_after, settings.retry_after_max)
    ceiling = min(settings.backoff_max, settings.backoff_initial * (2 ** (attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)


def with_retries(operation: Callable[[], T], settings: NetworkSettings, what: str,
                 on_retry: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None) -> T:
    """Run ``operation``, retrying :class:`RetryableError` with backoff; ``cancel``, once
    set, ends the wait between attempts with ``KeyboardInterrupt``.

    ``settings.retries`` counts failures in a row: an attempt that made progress before
    failing (``progressed``) starts the count again.
    """
    attempt = 0
    while True:
        if cancel is not None and cancel.is_set():
            raise KeyboardInterrupt
        try:
            return operation()
        except RetryableError as exc:
            attempt = 1 if exc.progressed else attempt + 1
            if attempt > settings.retries:
                raise NetworkError(f"{what}: {exc} (gave up after {settings.retries} retries)",
                                   details=["check the network path to the server, then run "
                                            "the same command again (a fetch keeps the "
                                            "files it finished)"]
                                   ) from None
            delay = backoff_delay(attempt, settings, exc.retry_after)
            if on_retry is not None:
                on_retry(f"{what}: {exc}; retry {attempt}/{settings.retries} in {delay:.1f}s")
            if cancel is not None:
                cancel.wait(delay)
            else:
                time.sleep(delay)


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """Whether ``a`` and ``b`` have one scheme, host and port: credentials for one go to
    the other."""
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def without_credentials(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` less those that carry a secret (Authorization, Cookie, ...)."""
    return {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}


def open_stream(client: httpx.Client, url: str, *, auth: Auth | None = None,
                headers: Mapping[str, str] | None = None, method: str = "GET",
                content: bytes | Iterable[bytes] | None = None, action: str | None = None,
                accept_status: frozenset[int] = frozenset()) -> httpx.Response:
    """Send a request and return the streaming response after redirects and auth.

    Retryable failures raise :class:`RetryableError`; a final 4xx raises the matching
    :class:`~airgap.errors.AirgapError` (``action``, like ``push``, names what a 401 or
    403 refused), unless its status is in ``accept_status``. The caller must close the
    response. Once a redirect leaves the origin of ``url``, neither ``auth`` nor the
    credential headers among ``headers`` are sent again, as curl and requests do.

    A body that streams (``content`` an iterable) cannot be sent twice: a ``401`` that
    ``auth`` answers raises :class:`Reauthenticated`, and a redirect is refused.
    """
    try:
        origin = httpx.URL(url)
    except httpx.InvalidURL as exc:  # a part of it came from a server (a version, a digest)
        raise ServerResponseError(f"{url!r} is not a valid URL ({exc})") from None
    replayable = content is None or isinstance(content, bytes)
    target = origin
    challenged = False
    base_headers = dict(headers or {})
    for _ in range(MAX_REDIRECTS + 1):
        if not same_origin(target, origin):
            base_headers = without_credentials(base_headers)
        request_headers = dict(base_headers)
        if auth is not None and same_origin(target, origin):
            request_headers.update(auth.headers_for(target))
        try:
            request = client.build_request(method, target, headers=request_headers,
                                           content=content)
            response = client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise transport_error(exc, target) from None
        if response.is_redirect:
            response.close()
            location = response.headers.get("location")
            if not location:
                raise ServerResponseError(f"{target}: redirect without a Location header")
            if not replayable:
                raise ServerResponseError(f"{method} {url}: the server redirects a streamed "
                                          f"upload ({response.status_code}), which airgap "
                                          "does not send twice")
            target = target.join(location)
            if target.scheme not in ("http", "https"):
                raise ServerResponseError(f"{url}: redirected to a non-HTTP URL {target}")
            method = "GET" if response.status_code == 303 else method
            continue
        if response.status_code == 401 and auth is not None and not challenged \
                and same_origin(target, origin):
            challenged = True
            response.read()
            response.close()
            if auth.handle_challenge(response):
                if not replayable:
                    raise Reauthenticated(f"{method} {url}: the server refused the "
                                          "credentials mid-upload (401); starting over with "
                                          "fresh ones", retry_after=0.0)
                target = origin
                continue
        if response.status_code < 400 or response.status_code in accept_status:
            return response
        raise _status_error(response, url, method, action)
    raise ServerResponseError(f"{url}: more than {MAX_REDIRECTS} redirects")


def login_hint(url: str) -> str:
    """How to give credentials for the registry at ``url``."""
    host = host_port(url)
    return (f"log in with `docker login {host}`, or set AIRGAP_REGISTRY={host}, "
            "AIRGAP_REGISTRY_USERNAME and AIRGAP_REGISTRY_PASSWORD")


def _excerpt(response: httpx.Response, limit: int = 300) -> str:
    """The start of an error answer, printable, for a message (registries explain there)."""
    try:
        head = next(response.iter_bytes(limit), b"")[:limit]
    except httpx.HTTPError:
        head = b""
    finally:
        response.close()
    text = head.decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() else " " for c in text).strip()


def _status_error(response: httpx.Response, url: str, method: str, action: str | None
                  ) -> Exception:
    status = response.status_code
    if status in RETRYABLE_STATUS:
        response.close()
        return RetryableError(f"server answered {status}",
                              parse_retry_after(response.headers.get("retry-after")))
    if status == 404:
        response.close()
        return NotFoundError(f"{url}: not found (404)")
    if status in (401, 403):
        response.close()
        what = f"{method} {url}: the server refused the {action}" if action else \
            f"{url}: access denied"
        return AuthenticationError(f"{what} ({status})", details=[login_hint(url)])
    said = _excerpt(response)
    return ServerResponseError(f"{method} {url}: server answered {status}" if action else
                               f"{url}: server answered {status}",
                               details=[f"it said: {said}"] if said else [])


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < 10:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def transport_error(exc: httpx.TransportError, url: httpx.URL | str) -> Exception:
    """The error to raise for a failed connection or transfer: retryable, unless it is
    one no retry can mend (an untrusted certificate, a name that does not resolve, TLS
    to a server that speaks plain HTTP)."""
    target = httpx.URL(str(url))
    text = str(exc)
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in text:
        return NetworkError(f"the TLS certificate of {target.host} is not trusted",
                            details=[f"give the CA that signed it with {setting('ca_cert')} "
                                     "or sources.ca_cert in the manifest"])
    if isinstance(exc, httpx.ConnectError) and \
            any(isinstance(cause, socket.gaierror) for cause in _causes(exc)):
        return NetworkError(f"cannot find {target.host}: the name does not resolve ({exc})",
                            details=["check the host name, and the DNS or /etc/hosts of "
                                     "this machine"])
    if isinstance(exc, httpx.ConnectError) and target.scheme == "https" and \
            any(mark in text for mark in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE",
                                          "HTTP_REQUEST", "record layer failure")):
        where = f"{target.host}:{target.port or 443}"
        return NetworkError(f"{where} does not speak TLS: it looks like a plain-HTTP server",
                            details=[f"give its address as http://{where}, if plain HTTP "
                                     "is what you want there"])
    if isinstance(exc, httpx.TimeoutException):
        return RetryableError(f"timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.RemoteProtocolError) and "location header" in str(exc).lower():
        # httpx parses every redirect's Location (even one it is not asked to follow)
        # before airgap sees the answer.
        return ServerResponseError(f"{url}: the server redirects to something that is not "
                                   f"a valid URL ({exc})")
    return RetryableError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def refuse_html(url: str, headers: httpx.Headers, what: str) -> None:
    """Refuse a web page where airgap asked for a ``what`` (a file, a document): what a
    proxy or a login page answers with 200, never to be stored or parsed as the thing."""
    if headers.get("content-type", "").lower().startswith("text/html"):
        raise ServerResponseError(f"{url}: the server answered an HTML page instead of the "
                                  f"{what} (a proxy or login page?)")


@dataclass(frozen=True)
class SmallResponse:
    """A small answer read whole: an API document, a manifest, a token."""

    url: str
    headers: httpx.Headers
    content: bytes

    def json(self) -> Any:
        """The answer as JSON, no deeper than documents go (:mod:`airgap.documents`), or
        a :class:`ServerResponseError` naming the URL."""
        try:
            return parse_json(self.content, max_size=max(len(self.content), 1))
        except DocumentError as exc:
            raise ServerResponseError(f"{self.url}: the answer is {exc}") from None


def fetch_small(client: httpx.Client, url: str, settings: NetworkSettings, *,
                auth: Auth | None = None, accept: str | None = None,
                headers: Mapping[str, str] | None = None, max_size: int = 4 << 20,
                on_retry: Callable[[str], None] | None = None,
                cancel: threading.Event | None = None) -> SmallResponse:
    """GET a document of at most ``max_size`` bytes, with retries (see
    :func:`with_retries` for ``cancel``)."""
    headers = {**(headers or {}), **({"Accept": accept} if accept else {})}

    def attempt() -> SmallResponse:
        response = open_stream(client, url, auth=auth, headers=headers)
        try:
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_size:
                raise ServerResponseError(f"{url}: the server announces {length} bytes, more "
                                          f"than the {max_size} a document may have")
            refuse_html(url, response.headers, "document")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_size:
                    raise ServerResponseError(f"{url}: the answer is larger than the "
                                              f"{max_size} bytes a document may have")
        except httpx.TransportError as exc:
            raise transport_error(exc, url) from None
        finally:
            response.close()
        return SmallResponse(str(response.url), response.headers, bytes(body))

    return with_retries(attempt, settings, url, on_retry, cancel)
