"""Detached OpenPGP signatures, checked by GnuPG in a throwaway home.

The home holds only the trusted keys: the Elastic signing key shipped inside airgap
(refused unless it has the pinned fingerprint) plus the manifest's ``trust.keys``.
The user's own keyring is never read or written. A signature is accepted only when GnuPG
calls it valid AND the primary key that made it is one of the trusted fingerprints.

Homes are named ``airgap-gnupg-<pid>-<random>`` in the temporary folder. A
:class:`Verifier` removes its own on every way out (an error, Ctrl-C, SIGTERM, even one
that comes while gpg-agent is being stopped); a ``kill -9`` leaves one behind, and the
next :class:`Verifier` removes those whose process is gone, and those an earlier airgap
named ``airgap-gnupg-<random>`` (no process to ask) once untouched for a day.
gpg runs with :func:`~airgap.environment.child_environment`: no secret of airgap's.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.resources
import io
import itertools
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import gnupg

from airgap import elastic
from airgap.environment import child_environment
from airgap.errors import AirgapError, SignatureError, ToolMissingError, UsageError
from airgap.files import FileTooLargeError, process_is_alive, read_regular
from airgap.trust import openpgp

_GPG_OPTIONS = ["--no-autostart", "--trust-model", "always", "--no-auto-key-retrieve"]
# Detached signatures are a few hundred bytes; anything much larger is not one.
_MAX_SIGNATURE = 64 * 1024
# Where the system has no splice(2), the message goes to gpg in chunks of this size.
_COPY_CHUNK = 1 << 20
# A public key file with its signatures is a few KB; Elastic's is 2 KB.
_MAX_KEY_FILE = 1 << 20
_HOME_PREFIX = "airgap-gnupg-"
# What tempfile.mkdtemp adds after the prefix: the whole name of an old-style home.
_OLD_STYLE = re.compile(r"[a-z0-9_]{8}\Z")
# An old-style home untouched this long (seconds) belongs to no run still going.
OLD_STYLE_AGE = 24 * 3600
_GPG_HINT = ("install GnuPG 2.2 or later: `apt-get install gnupg` (Debian, Ubuntu), "
             "`dnf install gnupg2` (RHEL, Fedora) or `brew install gnupg` (macOS)")


@dataclass(frozen=True)
class TrustedKey:
    """A public key signatures may be made by. ``armored`` is the key as exported."""

    fingerprint: str
    uids: tuple[str, ...]
    source: str
    armored: str

    @property
    def key_id(self) -> str:
        """The long key ID (last 16 hex digits of the fingerprint)."""
        return self.fingerprint[-16:]

    @property
    def is_elastic(self) -> bool:
        """Whether this is Elastic's pinned signing key."""
        return self.fingerprint == elastic.ELASTIC_KEY_FINGERPRINT


def elastic_key_text() -> str:
    """The Elastic signing key shipped inside airgap, as ASCII armour."""
    resource = importlib.resources.files("airgap") / "keys" / elastic.ELASTIC_KEY_FILENAME
    return resource.read_text(encoding="ascii")


def gpg_binary() -> str:
    """The gpg program, or a clear error saying how to install it."""
    found = shutil.which("gpg") or shutil.which("gpg2")
    if found is None:
        raise ToolMissingError("gpg (GnuPG) is not installed; it is needed to check "
                               "Elastic's signatures", details=[_GPG_HINT])
    return found


def remove_dead_homes(folder: Path | None = None) -> list[Path]:
    """Remove the GnuPG homes in ``folder`` (default: the temporary folder) that belong
    to processes that are gone (killed before they could remove them), and old-style
    ones untouched for :data:`OLD_STYLE_AGE`; only this user's; return them."""
    removed = []
    base = Path(folder or tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for home in base.glob(f"{_HOME_PREFIX}*"):
            if not _is_dead_home(home):
                continue
            _release_readers(home)
            shutil.rmtree(home, ignore_errors=True)
            removed.append(home)
    return removed


def _is_dead_home(home: Path) -> bool:
    """Whether ``home`` is a GnuPG home of this user's that no live run of airgap uses."""
    rest = home.name.removeprefix(_HOME_PREFIX)
    pid, new_style, _ = rest.partition("-")
    if new_style and (not pid.isdigit() or int(pid) == os.getpid()
                      or process_is_alive(int(pid))):
        return False
    if not new_style and not _OLD_STYLE.match(rest):
        return False
    try:
        found = home.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        return False
    return bool(new_style) or time.time() - found.st_mtime > OLD_STYLE_AGE


def _release_readers(home: Path) -> None:
    """End the wait of a gpg the dead process left opening one of its message FIFOs (see
    :class:`_MessageFeed`): it would wait for a writer for ever; opened and closed here,
    the FIFO gives it an end of file, and it exits."""
    for fifo in home.glob("message-*"):
        with contextlib.suppress(OSError):  # ENXIO: nobody is waiting on this one
            if stat.S_ISFIFO(fifo.lstat().st_mode):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def read_key_file(path: Path) -> bytes:
    """The bytes of a public key file someone named, refusing what cannot be one."""
    try:
        return read_regular(path, _MAX_KEY_FILE)
    except FileTooLargeError:
        raise UsageError(f"key file {path}: larger than a public key file can be") from None
    except OSError as exc:
        raise UsageError(f"cannot read key file {path}: {exc.strerror or exc}") from None


class Verifier:
    """An isolated GnuPG home holding only the trusted keys; use as a context manager."""

    def __init__(self, extra_keys: Iterable[Path] = (), *, include_elastic: bool = True,
                 untrusted_fix: str = "add the signer's public key to trust.keys if it is "
                                      "yours") -> None:
        """``untrusted_fix`` ends the message for a signature by a key not in the home:
        how the user trusts it where this verifier is used."""
        self._untrusted_fix = untrusted_fix
        binary = gpg_binary()
        remove_dead_homes()
        self._lock = threading.Lock()
        self._messages = itertools.count()
        self.keys: dict[str, TrustedKey] = {}
        # From here on, whatever happens (Ctrl-C and SIGTERM too), the home goes.
        self._home = Path(tempfile.mkdtemp(prefix=f"{_HOME_PREFIX}{os.getpid()}-"))
        try:
            self._home.chmod(0o700)
            try:
                self._gpg = gnupg.GPG(gpgbinary=binary, gnupghome=str(self._home),
                                      options=list(_GPG_OPTIONS), env=child_environment())
            except (OSError, ValueError, RuntimeError) as exc:
                raise ToolMissingError(f"cannot run {binary}: {exc}",
                                       details=[_GPG_HINT]) from None
            if include_elastic:
                self._import(elastic_key_text(), "airgap's bundled Elastic key",
                             require=elastic.ELASTIC_KEY_FINGERPRINT)
            for path in extra_keys:
                self.add_key_file(path)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop anything GnuPG started in the home, then delete it (even when stopping
        is interrupted)."""
        if not self._home.exists():
            return
        try:
            # gpgconf may be missing where gpg is found: the home must go regardless.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(["gpgconf", "--homedir", str(self._home), "--kill", "all"],
                               check=False, capture_output=True, timeout=30,
                               env=child_environment())
        finally:
            shutil.rmtree(self._home, ignore_errors=True)

    def add_key_file(self, path: Path) -> list[TrustedKey]:
        """Trust every public key in ``path`` (ASCII armour or binary)."""
        return self._import(read_key_file(path), str(path))

    def fingerprints_in(self, path: Path) -> list[str]:
        """The fingerprints of the primary keys in the key file ``path``, without
        importing (trusting) any of them."""
        data = read_key_file(path)
        with self._lock:
            listed = self._gpg.scan_keys_mem(data)
        found = [str(k.get("fingerprint", "")).upper() for k in listed]
        if not found or not all(found):
            raise UsageError(f"{path}: no OpenPGP public key found in it")
        return list(dict.fromkeys(found))

    def _import(self, data: str | bytes, source: str, require: str | None = None
                ) -> list[TrustedKey]:
        with self._lock:
            result = self._gpg.import_keys(data)
        fingerprints = [f.upper() for f in dict.fromkeys(result.fingerprints or [])]
        if not fingerprints:
            raise UsageError(f"{source}: no OpenPGP public key found in it")
        if require is not None and fingerprints != [require]:
            raise AirgapError(f"{source} does not have the pinned fingerprint {require} "
                              f"(found {', '.join(fingerprints)}): this airgap installation "
                              "is damaged; reinstall it")
        added = []
        for fingerprint in fingerprints:
            listing = self._list(fingerprint)
            uids = tuple(str(u) for u in listing.get("uids", []))
            with self._lock:
                armored = self._gpg.export_keys(fingerprint)
            key = TrustedKey(fingerprint, uids, source, str(armored))
            self.keys[fingerprint] = key
            added.append(key)
        return added

    def _list(self, fingerprint: str) -> dict[str, Any]:
        with self._lock:
            listed = self._gpg.list_keys(keys=[fingerprint])
        return dict(listed[0]) if listed else {}

    def verify(self, data: Path, signature: Path, *, name: str | None = None) -> TrustedKey:
        """Check ``signature`` (detached, armoured or binary) over the file ``data``.

        Returns the trusted key that made it; raises :class:`SignatureError` naming the
        file (``name``, default the data file's name) otherwise.
        """
        label = name or data.name
        if not signature.is_file():
            raise SignatureError(f"{label}: the signature {signature.name} is missing")
        result = self._check(data, signature)
        status = (result.status or "").lower()
        if result.valid and result.pubkey_fingerprint:
            key = self.keys.get(str(result.pubkey_fingerprint).upper())
            if key is not None:
                return key
            raise SignatureError(f"{label}: signed by {result.pubkey_fingerprint}, which is "
                                 f"not a trusted key", details=[self._trusted_line()])
        unknown_signer = bool(result.key_id) and not result.pubkey_fingerprint
        if "no public key" in status or (unknown_signer and "bad" not in status):
            raise SignatureError(f"{label}: signed by key ID {result.key_id}, which is not "
                                 "a trusted key", details=[self._trusted_line()])
        if "bad" in status:
            raise SignatureError(f"{label}: does not match its signature {signature.name}: "
                                 "the file or the signature was altered")
        if "expired" in status or "revoked" in status:
            raise SignatureError(f"{label}: signature refused: {result.status}")
        raise SignatureError(f"{label}: {signature.name} is not a valid OpenPGP signature "
                             f"({result.status or 'no signature found'})")

    def _check(self, data: Path, signature: Path) -> gnupg.Verify:
        """Have GnuPG check ``signature`` over ``data``, as a signed message when it can
        (see :mod:`airgap.trust.openpgp`), else as the detached signature it is."""
        result = self._check_as_message(data, signature)
        if result is None:
            result = self._gpg.verify_file(str(signature), data_filename=str(data))
        return result

    def _check_as_message(self, data: Path, signature: Path) -> gnupg.Verify | None:
        """The signed-message check, or ``None`` whenever its answer would not be exactly
        the detached check's: an unusual signature, gpg giving up early, or a file whose
        size is not the number of bytes it holds (changing, or not a plain file)."""
        if not hasattr(os, "mkfifo"):
            return None
        try:
            with signature.open("rb") as handle:
                text = handle.read(_MAX_SIGNATURE + 1)
            if len(text) > _MAX_SIGNATURE:
                return None
            with data.open("rb", buffering=0) as handle:
                found = os.fstat(handle.fileno())
                if not stat.S_ISREG(found.st_mode):
                    return None
                prefix = openpgp.signed_message_prefix(text, found.st_size)
                if prefix is None:
                    return None
                feed = _MessageFeed(self._home / f"message-{next(self._messages)}", prefix,
                                    handle.fileno(), found.st_size)
                try:
                    # gpg reads the message from the FIFO named after --verify; its
                    # stdin, which python-gnupg insists on filling, stays empty.
                    result = self._gpg.verify_file(io.BytesIO(), extra_args=["--", str(feed.path)])
                finally:
                    complete = feed.finish()
                if not complete or result.returncode != 0:
                    return None
                return result
        except OSError:
            return None  # an unreadable file, or no FIFO could be made

    def _trusted_line(self) -> str:
        names = [f"{k.key_id} ({k.uids[0] if k.uids else k.source})" for k in self.keys.values()]
        return "trusted keys: " + "; ".join(names) + f" — {self._untrusted_fix}"


class _MessageFeed:
    """Writes ``prefix`` then the first ``length`` bytes of the open file ``source`` into
    a new FIFO at ``path``, on a thread of its own, for gpg to read as one message.

    The file's pages go from the page cache into the pipe by splice(2), never through
    Python: about 0.1 CPU-second less per 540 MiB than a copy through gpg's standard
    input (docs/benchmarks.md).
    """

    def __init__(self, path: Path, prefix: bytes, source: int, length: int) -> None:
        os.mkfifo(path, 0o600)
        self.path = path
        self._prefix = prefix
        self._source = source
        self._length = length
        self._sent = 0
        self._thread = threading.Thread(target=self._run, name="airgap-gpg-feed",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            fifo = os.open(self.path, os.O_WRONLY)  # returns once gpg opens it to read
        except OSError:
            return
        try:
            view = memoryview(self._prefix)
            while view:
                view = view[os.write(fifo, view):]
            splice = hasattr(os, "splice")
            while self._sent < self._length:
                try:
                    count = _send(self._source, fifo, self._sent, self._length - self._sent,
                                  splice=splice)
                except OSError as exc:
                    # A file system that cannot splice (some FUSE ones): copy instead.
                    if not splice or exc.errno not in (errno.EINVAL, errno.ENOSYS):
                        raise
                    splice = False
                    continue
                if count == 0:
                    return  # the file is shorter than it was
                self._sent += count
        except OSError:
            return  # gpg stopped reading (a broken pipe): its verdict says why
        finally:
            os.close(fifo)

    def finish(self) -> bool:
        """Wait for the writer to end, then remove the FIFO. Whether exactly ``length``
        bytes were sent and the file holds no more."""
        while self._thread.is_alive():
            # gpg may have ended without ever opening the FIFO, leaving the writer
            # waiting in open(): a reader that comes and goes releases it, and its
            # first write then fails.
            with contextlib.suppress(OSError):
                os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
            self._thread.join(0.05)
        self.path.unlink(missing_ok=True)
        return self._sent == self._length and not os.pread(self._source, 1, self._length)


def _send(source: int, pipe: int, offset: int, count: int, *, splice: bool) -> int:
    """Move up to ``count`` bytes at ``offset`` of the file ``source`` into ``pipe``, by
    splice(2) or else by a copy."""
    if splice:
        return os.splice(source, pipe, count, offset_src=offset)
    chunk = os.pread(source, min(count, _COPY_CHUNK), offset)
    view = memoryview(chunk)
    while view:
        view = view[os.write(pipe, view):]
    return len(chunk)
