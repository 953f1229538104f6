"""The artifact registry of the isolated network: a ``downloads/`` tree over HTTP(S).

Agents upgrade from it as from artifacts.elastic.co: ``agent.download.sourceURI`` is
``http(s)://host:port/downloads/``; they fetch ``beats/elastic-agent/<file>``, its ``.sha512``
and ``.asc``. Elastic Defend's endpoints fetch ``endpoint/...`` below the same
``/downloads/`` (their ``base_url`` is the server's root). Files go out through aiohttp's
``FileResponse`` (sendfile, Range, HEAD), each with a strong ``ETag`` from its content
(:mod:`airgap.load.etags`) that ``If-None-Match`` and ``If-Range`` are judged by; nothing
outside the tree, no listing, no ``.part`` file is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import hdrs, web, web_response
from aiohttp.abc import AbstractStreamWriter
from aiohttp.typedefs import Handler

from airgap.bundle.layout import DOWNLOADS
from airgap.errors import UsageError, setting
from airgap.files import check_regular
from airgap.load.connections import ConnectionGuard, Limits, listen
from airgap.load.etags import ContentTags, not_modified, range_applies
from airgap.reporter import NullReporter, Reporter

#: Where the tree is served, so the sourceURI reads like Elastic's ``.../downloads/``.
URL_PREFIX = f"/{DOWNLOADS}/"

_CONTENT_TYPES = (  # .tar.gz is covered by .gz
    (".gz", "application/gzip"), (".tgz", "application/gzip"), (".zip", "application/zip"),
    (".deb", "application/vnd.debian.binary-package"), (".rpm", "application/x-rpm"),
    (".sha512", "text/plain; charset=utf-8"), (".asc", "application/pgp-signature"),
    (".sig", "application/pgp-signature"), (".json", "application/json"))
_WILDCARDS = ("", "0.0.0.0", "::")  # noqa: S104 - names of "every interface", not a bind
SERVER = "airgap"
# aiohttp puts "Python/3.x aiohttp/3.x" in the Server header of every answer it makes
# itself (a 400 for a malformed request never reaches the application, whose
# on_response_prepare names it otherwise): no version for a scanner to match.
web_response.SERVER_SOFTWARE = SERVER  # type: ignore[attr-defined]
TLS_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class ServeSettings:
    """What ``airgap serve`` serves, and where."""

    root: Path
    bind: str = "127.0.0.1"
    port: int = 8000
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_min_version: str = "1.2"
    limits: Limits = field(default_factory=Limits)


def resolve_root(path: Path) -> Path:
    """The directory actually served: ``path/downloads`` for a bundle, else ``path`` itself."""
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise UsageError(f"{path} {what}: give a bundle directory (with downloads/ inside) "
                         "or a downloads tree to serve")
    downloads = path / DOWNLOADS
    return (downloads if downloads.is_dir() else path).resolve()


def content_type_for(name: str) -> str:
    """The Content-Type to send for a file called ``name``."""
    lowered = name.lower()
    return next((ct for suffix, ct in _CONTENT_TYPES if lowered.endswith(suffix)),
                "application/octet-stream")


def _safe_file(root: Path, relative: str) -> Path | None:
    """The regular file ``relative`` names below ``root``, or None if it must not be served."""
    parts = relative.split("/")
    # Empty parts would make an absolute path; "." and ".." could climb out of root.
    if any(part in ("", ".", "..") or "\x00" in part for part in parts) or \
            parts[-1].endswith(".part"):
        return None
    try:
        resolved = root.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    # A symlink may point anywhere: only what really lies below root is served.
    if not resolved.is_relative_to(root) or resolved.name.endswith(".part"):
        return None
    return resolved if resolved.is_file() else None


class _IdentityFileResponse(web.FileResponse):
    """Sends the file itself: ``FileResponse`` would send a sibling ``x.gz`` with a
    Content-Encoding to a client accepting gzip. Preparing twice sends it once.

    Its ``ETag`` is ``content_tag``: the conditions that name tags are decided here
    with it, not by ``FileResponse`` with its own (mtime and size) tag."""

    def __init__(self, path: Path, content_tag: str, content_type: str) -> None:
        super().__init__(path, headers={hdrs.CONTENT_TYPE: content_type})
        self.content_tag = content_tag

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await web.StreamResponse.prepare(self, request)
        headers = request.headers.copy()
        headers.popall(hdrs.ACCEPT_ENCODING, None)
        headers.popall(hdrs.IF_NONE_MATCH, None)
        if not range_applies(headers.get(hdrs.IF_RANGE), self.content_tag):
            headers.popall(hdrs.RANGE, None)  # the client holds other bytes: all of these
        headers.popall(hdrs.IF_RANGE, None)
        return await super().prepare(request.clone(headers=headers))


async def _content_etag(request: web.Request, response: web.StreamResponse) -> None:
    """Give a file's answer (200, 206, 304, 416) its content tag, just before it is sent."""
    tag = getattr(response, "content_tag", None)
    if tag is not None:
        response.headers[hdrs.ETAG] = tag


def make_app(root: Path, access_log: logging.Logger | None = None,
             guard: ConnectionGuard | None = None) -> web.Application:
    """The application serving ``root`` at ``/downloads/``, plus ``/health`` and ``/``; each
    request is logged through ``access_log``, one line, once its answer is sent, and
    ``guard`` told when it starts and ends."""
    root = root.resolve()

    @web.middleware
    async def log_access(request: web.Request, handler: Handler) -> web.StreamResponse:
        status: int | str = 500
        size: int | str | None = None
        if guard is not None:
            guard.request_started(request.transport)
        try:
            response = await handler(request)
            status, size = response.status, response.content_length
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except (ConnectionError, asyncio.CancelledError):
            status = "aborted"
            raise
        finally:
            if guard is not None:
                guard.request_ended(request.transport)
            if access_log is not None:  # raw_path: as sent, percent-encoding kept
                access_log.info('%s "%s %s HTTP/%d.%d" %s %s', request.remote, request.method,
                                request.raw_path, *request.version, status,
                                "-" if size is None or request.method == "HEAD" else size)

    tags = ContentTags()

    async def download(request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        path = await asyncio.to_thread(_safe_file, root, relative)
        if path is None:
            raise web.HTTPNotFound(text="404: Not Found\n")
        try:
            tag = await tags.tag_async(path)
        except OSError:  # gone, or unreadable, since it was found
            raise web.HTTPNotFound(text="404: Not Found\n") from None
        if not_modified(request.headers.get(hdrs.IF_NONE_MATCH), tag):
            return web.Response(status=304, headers={hdrs.ETAG: tag})
        response = _IdentityFileResponse(path, tag,
                                         content_type_for(relative.rsplit("/", 1)[-1]))
        await response.prepare(request)  # sent now, so the access log sees the real status
        return response

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def index(request: web.Request) -> web.Response:
        source_uri = f"{request.scheme}://{request.host}{URL_PREFIX}"
        return web.Response(text=(
            "airgap artifact registry: Elastic's artifacts.elastic.co downloads/ tree\n"
            f"files: {source_uri}<dir>/<file> (with .sha512 and .asc beside each)\n"
            f"agent.download.sourceURI: {source_uri}\n"))

    async def server_header(request: web.Request, response: web.StreamResponse) -> None:
        response.headers[hdrs.SERVER] = SERVER

    app = web.Application(middlewares=[log_access])
    app.on_response_prepare.append(_content_etag)
    app.on_response_prepare.append(server_header)
    app.router.add_get(URL_PREFIX + "{path:.+}", download)
    app.router.add_get("/health", health)
    app.router.add_get("/", index)
    return app


def ssl_context_for(settings: ServeSettings) -> ssl.SSLContext | None:
    """The server TLS context for ``settings``; None to serve plain HTTP."""
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("TLS needs both a certificate and its private key: give both, "
                         "or neither to serve plain HTTP")
    if settings.tls_min_version not in TLS_VERSIONS:
        raise UsageError(f"{setting('tls_min_version')} {settings.tls_min_version!r}: give one "
                         f"of {', '.join(TLS_VERSIONS)}")
    for path in (cert, key):
        try:
            check_regular(path)
        except OSError as exc:
            raise UsageError(f"cannot read TLS certificate {cert} or key {key}: "
                             f"{path}: {exc.strerror or exc}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[settings.tls_min_version]
    try:
        # An empty password: an encrypted key fails here instead of prompting on the terminal.
        context.load_cert_chain(cert, key, password="")
    except ssl.SSLError as exc:
        raise UsageError(f"cannot use TLS certificate {cert} with key {key}: {exc.reason or exc}"
                         " (both must be PEM, the key unencrypted and the certificate's)") from exc
    except OSError as exc:
        raise UsageError(f"cannot read TLS certificate {cert} or key {key}: "
                         f"{exc.strerror or exc}") from exc
    return context


@dataclass
class Serving:
    """A running server: aiohttp's runner, the connections' guard, the port bound."""

    runner: web.AppRunner
    guard: ConnectionGuard
    port: int


async def start_server(settings: ServeSettings, access_log: logging.Logger | None,
                       shutdown_timeout: float, reporter: Reporter | None = None) -> Serving:
    """Start serving on the running event loop (``settings.port`` 0 picks a free port);
    ``reporter`` gets the counted warnings about failed connections."""
    ssl_context = ssl_context_for(settings)
    root = resolve_root(settings.root)
    try:
        sockets = listen(settings.bind, settings.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {settings.bind or '*'}:{settings.port}: "
                         f"{exc.strerror or exc} "
                         "(another server may use that port, or the address is not this "
                         "machine's: choose another)") from exc
    guard = ConnectionGuard(sockets, None, settings.limits, ssl_context,
                            reporter or NullReporter())
    runner = web.AppRunner(make_app(root, access_log, guard), access_log=None,
                           handle_signals=False, shutdown_timeout=shutdown_timeout,
                           keepalive_timeout=settings.limits.keepalive_timeout)
    try:
        await runner.setup()
        server = runner.server
        assert server is not None
        guard.protocol = server
        guard.start()
    except BaseException:
        for sock in sockets:
            sock.close()
        await runner.cleanup()
        raise
    return Serving(runner, guard, int(sockets[0].getsockname()[1]))


def base_url(settings: ServeSettings, port: int) -> str:
    """The URL the server answers at, for messages (``<this-host>`` for every interface)."""
    host = settings.bind
    host = "<this-host>" if host in _WILDCARDS else f"[{host}]" if ":" in host else host
    return f"{'https' if settings.tls_cert else 'http'}://{host}:{port}"


def run_server(settings: ServeSettings, reporter: Reporter,
               access_log: logging.Logger | None = None) -> None:
    """Serve ``settings.root`` until SIGINT or SIGTERM and report the sourceURI to configure;
    :class:`UsageError` for a missing root, bad TLS files or a port already in use."""

    async def serve() -> None:
        serving = await start_server(settings, access_log, shutdown_timeout=5,
                                     reporter=reporter)
        port = serving.port
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Only the main thread may install handlers; elsewhere the caller stops us.
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        try:
            source_uri = base_url(settings, port) + URL_PREFIX
            reporter.info(f"serving {resolve_root(settings.root)} at {source_uri}")
            reporter.info(f"agent.download.sourceURI: {source_uri}")
            await stop.wait()
        finally:
            await stop_server(serving, cancel_tasks=False)

    asyncio.run(serve())


async def stop_server(serving: Serving | None, *, cancel_tasks: bool = True) -> None:
    """Stop listening, close the connections, then (``cancel_tasks``) cancel whatever
    still runs on this loop (a stalled client)."""
    try:
        if serving is not None:
            try:
                await serving.guard.stop()
            finally:
                await serving.runner.cleanup()
    finally:
        if cancel_tasks:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
