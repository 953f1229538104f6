"""The artifact registry of the isolated network: a ``downloads/`` tree over HTTP(S).

Agents upgrade from it as from artifacts.elastic.co: ``agent.download.sourceURI`` is
``http(s)://host:port/downloads/``; they fetch ``beats/elastic-agent/<file>``, its ``.sha512``
and ``.asc``. Elastic Defend's endpoints fetch ``endpoint/...`` below the same
``/downloads/`` (their ``base_url`` is the server's root): a tree ``load --artifacts``
laid out holds both; a bundle is served from its ``downloads/`` and its
``security/downloads/`` at once (:func:`served_tree`). Files go out through aiohttp's
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

from airgap.bundle.layout import DOWNLOADS, SECURITY
from airgap.bundle.medium import named_like
from airgap.errors import UsageError, setting
from airgap.files import check_regular
from airgap.load.connections import ConnectionGuard, Limits, listen
from airgap.load.etags import ContentTags, HashingStopped, not_modified, range_applies
from airgap.load.failures import connection_gone
from airgap.load.known import KnownDigests
from airgap.load.served import verify_served
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
    tls_min_version: str | None = None  # None: 1.2 (with TLS); without TLS, refused
    limits: Limits = field(default_factory=Limits)
    # A bundle is verified before it is served (by run_server), as load --artifacts does.
    skip_verify: bool = False
    trust_keys: tuple[Path, ...] = ()
    trust_signers: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ServedTree:
    """What is served at ``/downloads/``: the folders looked in, in order, and the
    digests already known of their files."""

    roots: tuple[Path, ...]
    known: KnownDigests
    bundle: bool = False


def served_tree(path: Path) -> ServedTree:
    """For a bundle, its ``downloads/`` and Elastic Defend's ``security/downloads/`` (both
    at ``/downloads/``, as Elastic serves them from two hosts), with bundle.json's
    digests; else the tree ``path`` itself (as ``load --artifacts`` lays it out)."""
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise UsageError(f"{path} {what}: give a bundle directory (with downloads/ inside) "
                         "or a downloads tree to serve")
    trees = [tree.resolve() for tree in (path / DOWNLOADS, path / SECURITY / DOWNLOADS)
             if tree.is_dir()]
    if trees:
        return ServedTree(tuple(trees), KnownDigests.of_bundle(path), bundle=True)
    return ServedTree((path.resolve(),), KnownDigests.of_tree(path))


def resolve_root(path: Path) -> Path:
    """The first directory served: ``path/downloads`` for a bundle, else ``path`` itself."""
    return served_tree(path).roots[0]


def content_type_for(name: str) -> str:
    """The Content-Type to send for a file called ``name``."""
    lowered = name.lower()
    return next((ct for suffix, ct in _CONTENT_TYPES if lowered.endswith(suffix)),
                "application/octet-stream")


def _safe_file(roots: tuple[Path, ...], relative: str) -> Path | None:
    """The regular file ``relative`` names below the first of ``roots`` that has it, or
    None if it must not be served."""
    parts = relative.split("/")
    # Empty parts would make an absolute path; "." and ".." could climb out of root;
    # .airgap* are airgap's own (load's digest index, a fetch's staging folder).
    if any(part in ("", ".", "..") or "\x00" in part or part.startswith(".airgap")
           for part in parts) or parts[-1].endswith(".part"):
        return None
    if named_like(relative):  # what a medium's system adds (._NAME, .DS_Store): never sent
        return None
    for root in roots:
        found = _below(root, parts)
        if found is not None:
            return found
    return None


def _below(root: Path, parts: list[str]) -> Path | None:
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


def make_app(tree: ServedTree, access_log: logging.Logger | None = None,
             guard: ConnectionGuard | None = None) -> web.Application:
    """The application serving ``tree`` at ``/downloads/``, plus ``/health`` and ``/``; each
    request is logged through ``access_log``, one line, once its answer is sent, and
    ``guard`` told when it starts and ends."""
    roots = tree.roots

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
        except asyncio.CancelledError:
            status = "aborted"
            raise
        except Exception as exc:
            if connection_gone(exc) is not None:  # closed by the client (behind another
                status = "aborted"  # error over TLS)
            raise
        finally:
            if guard is not None:
                guard.request_ended(request.transport)
            if access_log is not None:  # raw_path: as sent, percent-encoding kept
                access_log.info('%s "%s %s HTTP/%d.%d" %s %s', request.remote, request.method,
                                request.raw_path, *request.version, status,
                                "-" if size is None or request.method == "HEAD" else size)

    tags = ContentTags(tree.known)

    async def download(request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        path = await asyncio.to_thread(_safe_file, roots, relative)
        if path is None:
            raise web.HTTPNotFound(text="404: Not Found\n")
        try:
            tag = await tags.tag_async(path)
        except OSError:  # gone, or unreadable, since it was found
            raise web.HTTPNotFound(text="404: Not Found\n") from None
        except HashingStopped:  # the server stops: no tag to give
            raise web.HTTPServiceUnavailable(text="503: stopping\n") from None
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

    async def close_tags(app: web.Application) -> None:
        tags.close()  # at once: a hash in progress must not hold up the shutdown

    app = web.Application(middlewares=[log_access])
    app.on_shutdown.append(close_tags)
    app.on_response_prepare.append(_content_etag)
    app.on_response_prepare.append(server_header)
    app.router.add_get(URL_PREFIX + "{path:.+}", download)
    app.router.add_get("/health", health)
    app.router.add_get("/", index)
    return app


def ssl_context_for(settings: ServeSettings) -> ssl.SSLContext | None:
    """The server TLS context for ``settings``; None to serve plain HTTP."""
    cert, key = settings.tls_cert, settings.tls_key
    minimum = settings.tls_min_version
    if cert is None and key is None:
        if minimum is not None:  # plain HTTP has no TLS version: the option would be lost
            raise UsageError(f"{setting('tls_min_version')} needs {setting('tls_cert')} and "
                             f"{setting('tls_key')}: give them to serve HTTPS, or leave "
                             f"{setting('tls_min_version')} out to serve plain HTTP")
        return None
    if cert is None or key is None:
        raise UsageError("TLS needs both a certificate and its private key: give both, "
                         "or neither to serve plain HTTP")
    minimum = minimum or "1.2"
    if minimum not in TLS_VERSIONS:
        raise UsageError(f"{setting('tls_min_version')} {minimum!r}: give one "
                         f"of {', '.join(TLS_VERSIONS)}")
    for path in (cert, key):
        try:
            check_regular(path)
        except OSError as exc:
            raise UsageError(f"cannot read TLS certificate {cert} or key {key}: "
                             f"{path}: {exc.strerror or exc}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[minimum]
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
    tree: ServedTree


async def start_server(settings: ServeSettings, access_log: logging.Logger | None,
                       shutdown_timeout: float, reporter: Reporter | None = None) -> Serving:
    """Start serving on the running event loop (``settings.port`` 0 picks a free port);
    ``reporter`` gets the counted warnings about failed connections."""
    ssl_context = ssl_context_for(settings)
    tree = served_tree(settings.root)
    try:
        sockets = listen(settings.bind, settings.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {settings.bind or '*'}:{settings.port}: "
                         f"{exc.strerror or exc} "
                         "(another server may use that port, or the address is not this "
                         "machine's: choose another)") from exc
    guard = ConnectionGuard(sockets, None, settings.limits, ssl_context,
                            reporter or NullReporter())
    runner = web.AppRunner(make_app(tree, access_log, guard), access_log=None,
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
    return Serving(runner, guard, int(sockets[0].getsockname()[1]), tree)


def base_url(settings: ServeSettings, port: int) -> str:
    """The URL the server answers at, for messages (``<this-host>`` for every interface)."""
    host = settings.bind
    host = "<this-host>" if host in _WILDCARDS else f"[{host}]" if ":" in host else host
    return f"{'https' if settings.tls_cert else 'http'}://{host}:{port}"


def run_server(settings: ServeSettings, reporter: Reporter,
               access_log: logging.Logger | None = None) -> None:
    """Verify ``settings.root`` if it is a bundle (:func:`verify_served`), then serve it
    until SIGINT or SIGTERM and report the sourceURI to configure; :class:`UsageError` for
    a missing root, bad TLS files or a port already in use, :class:`BundleRefused` for a
    bundle that fails verification (nothing is served)."""
    ssl_context_for(settings)  # the options, before minutes of hashing
    verify_served(settings.root, served_tree(settings.root).bundle,
                  skip_verify=settings.skip_verify, trust_keys=settings.trust_keys,
                  trust_signers=settings.trust_signers, reporter=reporter)

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
            tree = serving.tree
            reporter.info(f"serving {' and '.join(map(str, tree.roots))} at {source_uri}")
            reporter.info(f"agent.download.sourceURI: {source_uri}")
            if tree.bundle and len(tree.roots) > 1:
                reporter.info(f"Elastic Defend's artifacts ({tree.roots[1]}): "
                              f"advanced.artifacts.global.base_url: {base_url(settings, port)}")
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
