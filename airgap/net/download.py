"""The download engine that serves images, artifacts and packages alike.

Each item streams from the socket into ``<dest>.part``, hashed in the same pass, with
its size held to what is expected (or to a limit). A broken transfer resumes with
``Range: bytes=N-``; a server that ignores Range restarts the file cleanly. When the size
is not known beforehand, the total a ``206`` names in its ``Content-Range`` becomes the
size to reach, and a ``416`` naming exactly the bytes already held means the ``.part`` is
complete (it still has to pass every check). Only when the
size, the digest and the item's own check (a checksum file, a signature) all pass is the
``.part`` renamed to its final name, so a file with its final name is always complete
and verified. A run that was interrupted picks up its ``.part`` files and re-verifies
the files it already finished instead of downloading them again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from airgap.errors import (
    AirgapError,
    ServerResponseError,
    VerificationError,
    raise_collected,
)
from airgap.files import naming, remove_if_shared
from airgap.net.body import iter_body
from airgap.net.transfer import (
    UNSATISFIED_RANGE,
    Transfer,
    check_expected,
    check_headers,
    check_resume,
)
from airgap.net.transport import (
    READ_SIZE,
    Auth,
    NetworkSettings,
    RetryableError,
    SmallResponse,
    fetch_small,
    open_stream,
    transport_error,
    with_retries,
)
from airgap.reporter import Reporter
from airgap.threads import map_in_threads
from airgap.trust.digests import Digests, Hasher, hash_file

DEFAULT_MAX_SIZE = 1 << 40  # 1 TiB: no Elastic artifact comes near it
# An attempt that got this much before failing restarts the count of retries: a link
# that drops now and then still completes a large blob; a server that sends a few bytes
# and stalls does not.
PROGRESS = 1 << 20

Check = Callable[[Path, Digests], str | None]
T = TypeVar("T")


@dataclass(frozen=True)
class Download:
    """One file to fetch. ``size`` and ``sha256`` are enforced when known; ``check``
    runs on the complete ``.part``, must raise to refuse it, and says what it proved.

    ``existing`` is where a verified copy may already be (a bundle's own file, while the
    download goes to a staging folder): it is used when it verifies, never changed.
    ``label`` names the item in messages (a path in the bundle); ``phase`` groups it.
    """

    url: str
    dest: Path
    label: str
    size: int | None = None
    sha256: str | None = None
    max_size: int = DEFAULT_MAX_SIZE
    auth: Auth | None = field(default=None, compare=False)
    accept: str | None = None
    check: Check | None = field(default=None, compare=False)
    html_ok: bool = False
    existing: Path | None = None
    phase: str = ""

    @property
    def part(self) -> Path:
        """Where the bytes go until they are verified."""
        return self.dest.with_name(self.dest.name + ".part")


@dataclass(frozen=True)
class Fetched:
    """A verified file: where it is, what it hashes to, whether it was already there
    (``reused``), and how many of its bytes a partial download held (``resumed``)."""

    dest: Path
    url: str
    digests: Digests
    reused: bool
    resumed: int = 0

    @property
    def fetched_now(self) -> int:
        """The bytes this run moved for it."""
        return 0 if self.reused else self.digests.size - self.resumed


#: The check of the sources (:meth:`Downloader.quickly`): seconds a server may take to
#: connect or answer, and the retries it gets.
QUICK_TIMEOUT = 10.0
QUICK_RETRIES = 1


class Downloader:
    """Fetches :class:`Download` items, one at a time or many in parallel."""

    def __init__(self, client: httpx.Client, settings: NetworkSettings,
                 reporter: Reporter) -> None:
        self.client = client
        self.settings = settings
        self.reporter = reporter
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Stop every transfer (Ctrl-C): running ones at their next chunk, waiting ones
        before they start."""
        self._cancel.set()

    @contextlib.contextmanager
    def quickly(self) -> Iterator[None]:
        """Short timeouts and one retry meanwhile: for the check of the sources, which
        asks only small questions and must answer in seconds, not after the minutes a
        stalled transfer is given. Nothing else may use the client meanwhile."""
        settings, timeout = self.settings, self.client.timeout
        self.settings = dataclasses.replace(
            settings, retries=min(settings.retries, QUICK_RETRIES),
            connect_timeout=min(settings.connect_timeout, QUICK_TIMEOUT),
            read_timeout=min(settings.read_timeout, QUICK_TIMEOUT))
        self.client.timeout = httpx.Timeout(connect=self.settings.connect_timeout,
                                            read=self.settings.read_timeout,
                                            write=self.settings.read_timeout, pool=None)
        try:
            yield
        finally:
            self.settings, self.client.timeout = settings, timeout

    def retrying(self, operation: Callable[[], T], what: str) -> T:
        """Run ``operation`` with this engine's retries; a cancel ends the wait between
        attempts."""
        return with_retries(operation, self.settings, what, self.reporter.warning,
                            self._cancel)

    def fetch_small(self, url: str, *, auth: Auth | None = None, accept: str | None = None,
                    headers: dict[str, str] | None = None,
                    max_size: int = 4 << 20) -> SmallResponse:
        """GET a document (an API answer, a manifest, a token) read whole, with retries."""
        return fetch_small(self.client, url, self.settings, auth=auth, accept=accept,
                           headers=headers, max_size=max_size, on_retry=self.reporter.warning,
                           cancel=self._cancel)

    # -- many ------------------------------------------------------------------------------

    def fetch_all(self, items: Sequence[Download]) -> list[Fetched]:
        """Fetch ``items`` in parallel (``settings.jobs`` at a time), in order."""
        return self.run_all([functools.partial(self.fetch, item) for item in items],
                            what="downloads")

    def run_all(self, tasks: Sequence[Callable[[], T]], *, what: str) -> list[T]:
        """Run ``tasks`` on ``settings.jobs`` threads; return their results in order.

        Every task runs; failures are collected and raised together at the end, while
        whatever did complete stays in place for the next run. Ctrl-C stops them all.
        """
        def outcome(task: Callable[[], T]) -> tuple[T | None, AirgapError | None]:
            try:
                return task(), None
            except AirgapError as exc:
                return None, exc

        outcomes = map_in_threads(outcome, tasks, self.settings.jobs, self._cancel)
        errors = [error for _, error in outcomes if error is not None]
        raise_collected(errors, f"{len(errors)} of {len(tasks)} {what} failed")
        return [result for result, _ in outcomes if result is not None]

    # -- one -------------------------------------------------------------------------------

    def fetch(self, item: Download) -> Fetched:
        """Fetch one item (or reuse a verified copy) and return it, verified."""
        if self._cancel.is_set():
            raise KeyboardInterrupt
        key = str(item.dest)
        # A link (symbolic or hard) planted where the download goes must not be read as
        # ours, nor written through: it goes, and the file is fetched again. The bundle's
        # own copy (``existing``) is only read, and never through a link.
        remove_if_shared(item.dest)
        remove_if_shared(item.part)
        for earlier in (item.existing, item.dest):
            if earlier is not None and earlier.is_file() and not earlier.is_symlink():
                kept = self._reuse(item, earlier, key)
                if kept is not None:
                    return kept
        item.dest.parent.mkdir(parents=True, exist_ok=True)
        transfer = Transfer(item, Hasher(sha256=item.sha256 is not None))
        if item.part.exists():
            if item.size is not None and item.part.stat().st_size > item.size:
                item.part.unlink()
            else:
                hash_file(item.part, hasher=transfer.hasher)
        transfer.resumed = transfer.hasher.size
        self.reporter.task_started(key, item.label, item.size, phase=item.phase,
                                   resumed=transfer.resumed)
        try:
            self.retrying(lambda: self._until_complete(transfer, key), item.url)
            digests = transfer.hasher.digests()
            proved = check_expected(item, digests)
            if item.check is not None:
                proved += [p for p in [item.check(item.part, digests)] if p]
        except (VerificationError, ServerResponseError) as exc:
            item.part.unlink(missing_ok=True)
            self.reporter.task_finished(key, "rejected", exc.message)
            raise
        except BaseException:
            self.reporter.task_finished(key, "failed")
            raise
        item.part.replace(item.dest)
        self.reporter.task_finished(key, "fetched", ", ".join(proved))
        return Fetched(item.dest, item.url, digests, reused=False, resumed=transfer.resumed)

    def _reuse(self, item: Download, path: Path, key: str) -> Fetched | None:
        """A file an earlier run left at ``path`` is kept only if it still verifies; one
        that does not stays where it is (the bundle it belongs to still needs it, or a
        download replaces it) and the item is fetched again."""
        digests = hash_file(path, sha256=item.sha256 is not None)
        try:
            proved = check_expected(item, digests)
            if item.check is not None:
                proved += [p for p in [item.check(path, digests)] if p]
        except VerificationError as exc:
            self.reporter.warning(f"{path}: the copy from an earlier run does not verify "
                                  f"({exc.message}); downloading it again")
            if path == item.dest:
                path.unlink()
            return None
        self.reporter.task_kept(key, item.label, digests.size, phase=item.phase,
                                detail=", ".join(proved))
        return Fetched(path, item.url, digests, reused=True)

    def _until_complete(self, transfer: Transfer, key: str) -> None:
        """Ask for the rest as long as the server answers with complete ranges that stop
        short of the end (servers that cap a range's size do): those are no failures."""
        while self._attempt(transfer, key):
            pass

    def _attempt(self, transfer: Transfer, key: str) -> bool:
        """One request; True when it got a complete range short of the end (ask again)."""
        item, offset = transfer.item, transfer.hasher.size
        if transfer.total is not None and offset == transfer.total:
            return False  # the .part already holds every byte
        headers = {"Accept-Encoding": "identity"}
        if item.accept:
            headers["Accept"] = item.accept
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if transfer.validator:
                headers["If-Range"] = transfer.validator
        response = open_stream(self.client, item.url, auth=item.auth, headers=headers,
                               accept_status=frozenset({416}) if offset else frozenset())
        with contextlib.closing(response):
            if response.status_code == 416:
                self._range_not_satisfiable(response, transfer, key)
                return False
            if offset and response.status_code == 206:
                check_resume(response, transfer)
            elif offset:
                # The server sent the whole file again: start over, cleanly.
                transfer.restart()
                self.reporter.task_restarted(key, 0)
            elif response.status_code != 200:
                raise ServerResponseError(f"{item.url}: unexpected answer "
                                          f"{response.status_code} to a plain GET")
            check_headers(response, transfer)
            if not transfer.sized:
                total = transfer.total
                length = response.headers.get("content-length", "")
                if total is None and response.status_code == 200 and length.isdigit():
                    total = int(length)
                if total is not None:
                    transfer.sized = True
                    self.reporter.task_sized(key, total)
            return self._stream(response, transfer, key)

    def _range_not_satisfiable(self, response: httpx.Response, transfer: Transfer,
                               key: str) -> None:
        """A ``416`` to ``Range: bytes=N-``: with ``Content-Range: bytes */N`` the ``.part``
        already holds the whole file; otherwise the file changed, so start over."""
        item, offset = transfer.item, transfer.hasher.size
        match = UNSATISFIED_RANGE.match(response.headers.get("content-range", ""))
        total = int(match.group(1)) if match else None
        if total == offset and (item.size is None or total == item.size):
            transfer.total = total
            return  # complete: the caller's checks (digest, checksum, signature) decide
        transfer.restart()
        self.reporter.task_restarted(key, 0)
        raise RetryableError(f"the server cannot resume at byte {offset} (416, the file "
                             f"has {total if total is not None else 'an unknown number of'} "
                             "bytes); starting over", retry_after=0.0)

    def _stream(self, response: httpx.Response, transfer: Transfer, key: str) -> bool:
        """Append the body to the .part; True when it was a complete range short of the
        end, RetryableError when it ended early."""
        item, hasher = transfer.item, transfer.hasher
        # Progress is what no attempt had got before: a server that makes us start over
        # (Range ignored, file changed) and then drops has made none.
        offset = hasher.size
        start = max(offset, transfer.furthest)
        limit = transfer.total if transfer.total is not None else item.max_size
        try:
            with item.part.open("ab") as out:
                for chunk in iter_body(response, bytearray(READ_SIZE)):
                    if self._cancel.is_set():
                        raise KeyboardInterrupt
                    if hasher.size + len(chunk) > limit:
                        raise ServerResponseError(f"{item.url}: the server sent more than the "
                                                  f"{limit} bytes expected")
                    hasher.update(chunk)
                    out.write(chunk)
                    self.reporter.task_advanced(key, len(chunk))
        except httpx.TransportError as exc:
            error = transport_error(exc, item.url)
            if isinstance(error, RetryableError):
                error.progressed = hasher.size - start >= PROGRESS
            raise error from None
        except OSError as exc:  # a full disk, say: the message names the file
            named = naming(exc, item.part)
            if named is exc:
                raise
            raise named from None
        finally:
            transfer.furthest = max(transfer.furthest, hasher.size)
        if transfer.total is None or hasher.size >= transfer.total:
            return False
        if response.status_code == 206 and hasher.size == transfer.range_end \
                and hasher.size > offset:
            return True
        raise RetryableError(f"the transfer ended after {hasher.size} of {transfer.total} "
                             "bytes", progressed=hasher.size - start >= PROGRESS)
