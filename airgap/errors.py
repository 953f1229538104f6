"""Every error airgap reports, and the exit code each one maps to.

All errors derive from :class:`AirgapError`. The CLI turns them into exit codes in one
place (``airgap.cli.main``); nothing else decides an exit code. A message says what is
wrong and, where it can, how to fix it.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """Process exit codes, shared by every command."""

    OK = 0
    FAILED = 1
    USAGE = 2
    VERIFICATION = 3


class AirgapError(Exception):
    """Base of every error airgap reports to the user."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = tuple(details)

    def __str__(self) -> str:
        if not self.details:
            return self.message
        return self.message + "".join(f"\n  {line}" for line in self.details)


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

    @classmethod
    def from_os_error(cls, exc: OSError) -> FileSystemError:
        """An error naming the file and the cause, with a hint for the usual causes."""
        where = exc.filename if exc.filename is not None else "a file"
        hint = cls._HINTS.get(exc.errno or 0)
        return cls(f"{where}: {exc.strerror or exc}", details=[hint] if hint else [])


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
        super().__init__(message, details=[str(e).replace("\n", "\n  ") for e in errors])
        self.errors = tuple(errors)
        self.exit_code = max((e.exit_code for e in errors), default=ExitCode.FAILED)
