"""Every error airgap reports, and the exit code each one maps to.

All errors derive from :class:`AirgapError`. The CLI turns them into exit codes in one
place (``airgap.cli.main.main``); nothing else decides an exit code. A message says what is
wrong and, where it can, how to fix it.

Core code names its own settings, never a command-line flag: ``setting("trust_keys")``
in a message reads ``trust_keys`` as it is, and ``--trust-key`` once the command line
has put its names in (:func:`name_settings`), so another front end can use the same core.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import ClassVar

# A character no message takes from outside (the CLI shows no control characters).
_MARK = "\x1f"
_SETTING = re.compile(f"{_MARK}([a-z_]+){_MARK}")


def setting(name: str) -> str:
    """``name``, a field of a settings object, as a message mentions it: a front end shows
    it its own way (the command line as the option that sets it)."""
    return f"{_MARK}{name}{_MARK}"


def name_settings(text: str, names: Mapping[str, str] | None = None) -> str:
    """``text`` with each :func:`setting` shown as ``names`` calls it (else by its name)."""
    table = names or {}
    return _SETTING.sub(lambda found: table.get(found.group(1), found.group(1)), text)


def note_left(interruption: BaseException, what: str) -> None:
    """Say what an interruption (Ctrl-C, SIGTERM) leaves, on its way up through code that
    undid something for it (``the container X is back as it was``): the line the command
    line prints for it says so (:func:`left_by`)."""
    interruption.add_note(what)


def left_by(interruption: BaseException | None) -> list[str]:
    """What the code an interruption went through said it leaves (:func:`note_left`)."""
    return list(getattr(interruption, "__notes__", ())) if interruption is not None else []


class ExitCode(IntEnum):
    """Process exit codes, shared by every command."""

    OK = 0
    FAILED = 1
    USAGE = 2
    VERIFICATION = 3
    HUNG_UP = 129      # SIGHUP (the terminal or the ssh session went away): 128 + 1
    INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2, as shells report it
    PIPE_CLOSED = 141  # what read the output stopped reading (| head): 128 + SIGPIPE's 13
    TERMINATED = 143   # SIGTERM: 128 + 15


class AirgapError(Exception):
    """Base of every error airgap reports to the user."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = tuple(details)

    def text(self) -> str:
        """The message and its details, one indented line each, settings still marked."""
        return self.message + "".join(f"\n  {line}" for line in self.details)

    def __str__(self) -> str:
        return name_settings(self.text())


class UsageError(AirgapError):
    """The command line asked for something that cannot be done as asked."""

    exit_code = ExitCode.USAGE


class ManifestError(UsageError):
    """The manifest file cannot be read or does not follow the format."""


class NetworkError(AirgapError):
    """A server could not be reached, or kept failing after retries."""


class ServerResponseError(AirgapError):
    """A server answered with something airgap must not accept."""


class AuthenticationError(AirgapError):
    """A server refused the credentials, or asked for ones airgap does not have."""


class NotFoundError(AirgapError):
    """A server says a required item does not exist."""


class BundleError(AirgapError):
    """The bundle directory cannot be used as asked (locked, not a bundle, ...)."""


class DamagedBundleError(BundleError):
    """A file of the bundle is not what its format says (bundle.json, an image document):
    the bundle was damaged or altered, and nothing in it may be used."""

    exit_code = ExitCode.VERIFICATION


class FileSystemError(AirgapError):
    """Reading or writing a local file failed: disk full, permission denied, ..."""

    _HINTS: ClassVar[dict[int, str]] = {
        errno.ENOSPC: "the disk is full: free space there (a rerun resumes where this stopped)",
        errno.EDQUOT: "the disk quota is used up: free space there, then run again",
        errno.EACCES: "permission denied: run as a user who may write there, or pick "
                      "another folder",
        errno.EPERM: "the operation is not permitted there: pick another folder",
        errno.EROFS: "the file system is read-only: pick another folder",
        errno.ENOENT: "a folder on the way does not exist",
    }

    def __init__(self, message: str, *, details: Sequence[str] = (),
                 errno: int | None = None) -> None:
        super().__init__(message, details=details)
        self.errno = errno

    @classmethod
    def from_os_error(cls, exc: OSError, *, left: str | None = None) -> FileSystemError:
        """An error naming the file and the cause, with a hint for the usual causes;
        ``left`` says what the command left and that the same command starts again, for
        one that does not resume where it stopped."""
        where = exc.filename if exc.filename is not None else "a file"
        hint = cls._HINTS.get(exc.errno or 0)
        if left is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            full = "the disk is full" if exc.errno == errno.ENOSPC else \
                "the disk quota is used up"
            hint = f"{full}: free space there, then run the same command again ({left})"
        return cls(f"{where}: {exc.strerror or exc}", details=[hint] if hint else [],
                   errno=exc.errno)


class ToolMissingError(AirgapError):
    """A program airgap needs (gpg, docker) is not installed."""


class VerificationError(AirgapError):
    """A checksum, digest or signature does not match: the data must not be trusted."""

    exit_code = ExitCode.VERIFICATION


class ChecksumMismatchError(VerificationError):
    """A file's hash differs from the one it must have."""


class SignatureError(VerificationError):
    """A detached signature is missing, malformed, or not made by a trusted key."""


class ManyErrors(AirgapError):
    """Several items failed; the exit code is the most serious of theirs."""

    def __init__(self, message: str, errors: Sequence[AirgapError]) -> None:
        super().__init__(message, details=[e.text().replace("\n", "\n  ") for e in errors])
        self.errors = tuple(errors)
        self.exit_code = max((e.exit_code for e in errors), default=ExitCode.FAILED)


def raise_collected(errors: Sequence[AirgapError], message: str) -> None:
    """Return when ``errors`` is empty; raise the error itself when there is one, else a
    :class:`ManyErrors` headed by ``message``. Errors that say the same are said once
    (a host that does not resolve, for each of its 24 files)."""
    errors = list({error.text(): error for error in reversed(errors)}.values())[::-1]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ManyErrors(message, errors)
