"""The operator's signature of a bundle: ``SHA512SUMS.asc``, made with the operator's key.

The key's passphrase, if it has one, comes from where the operator is:

- at a terminal, gpg-agent asks for it through pinentry, exactly as ``gpg --sign`` would
  (and caches it as the agent is configured to);
- a script gives a file holding it (``--passphrase-file``), read once and handed to gpg on
  a pipe of its own, never in argv;
- CI may set ``AIRGAP_SIGN_PASSPHRASE``; gpg gets it the same way, and no child sees the
  variable.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from airgap.environment import ENV_PASSPHRASE, child_environment
from airgap.errors import UsageError, setting
from airgap.files import FileTooLargeError, atomic_write, read_regular
from airgap.trust import openpgp
from airgap.trust.gpg import gpg_binary

PASSPHRASE_ENV = ENV_PASSPHRASE
_MAX_PASSPHRASE_FILE = 64 << 10


@dataclass(frozen=True)
class OperatorKey:
    """The operator's key that signs SHA512SUMS, in the GnuPG home the operator names."""

    key_id: str
    gnupg_home: Path | None
    passphrase_file: Path | None = None

    def check(self) -> None:
        """Sign a few bytes now, so that a missing key or passphrase is found before a
        fetch downloads anything (at a terminal, pinentry asks now; the agent keeps it)."""
        self.sign(b"airgap: can this key sign?\n")

    def sign_to(self, data: bytes, signature: Path) -> None:
        """Write an ASCII-armoured detached signature of ``data`` to ``signature``."""
        atomic_write(signature, self.sign(data))

    def sign(self, data: bytes) -> bytes:
        """An ASCII-armoured detached signature of ``data``.

        The key is taken from the GnuPG home the operator names, never from a default one.
        """
        home = self.gnupg_home
        if home is None:
            raise UsageError(f"{setting('sign_with')} needs {setting('gnupg_home')}: airgap "
                             "never uses your default GnuPG keyring on its own")
        if not home.is_dir():
            raise UsageError(f"{setting('gnupg_home')} {home}: no such directory")
        passphrase = self._passphrase()
        env = child_environment()
        # --local-user, not --default-key: for a key the home lacks, gpg ignores
        # --default-key and signs with whatever key it has.
        command = [gpg_binary(), "--homedir", str(home), "--local-user", self.key_id,
                   "--armor", "--detach-sign", "--output", "-"]
        terminal = _terminal()
        if passphrase is None and terminal is not None:
            env["GPG_TTY"] = terminal  # where gpg-agent's pinentry asks
        elif passphrase is None:
            # No one to ask: a passphrase the agent holds already works, else fail now
            # rather than wait on a pinentry nobody sees.
            command[1:1] = ["--batch", "--no-tty", "--pinentry-mode", "error"]
        else:
            command[1:1] = ["--batch", "--no-tty"]
        reader = writer = -1
        try:
            if passphrase is not None:
                reader, writer = os.pipe()
                command[1:1] = ["--pinentry-mode", "loopback", "--passphrase-fd", str(reader)]
                # A passphrase is far smaller than a pipe's buffer: written whole at once.
                os.write(writer, passphrase.encode("utf-8") + b"\n")
                os.close(writer)
                writer = -1
            done = subprocess.run(command, input=data, capture_output=True, env=env,
                                  pass_fds=(reader,) if reader >= 0 else (), check=False)
        except OSError as exc:
            raise UsageError(f"signing with key {self.key_id} failed: {exc}") from None
        finally:
            for fd in (reader, writer):
                if fd >= 0:
                    os.close(fd)
        armored = done.stdout if done.returncode == 0 else b""
        if not armored.startswith(openpgp.ARMOR_BEGIN):
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            problem = said[-1] if said else "no signature was made"
            raise UsageError(f"signing with key {self.key_id} failed: {problem}",
                             details=[f"check that {home} holds the secret key {self.key_id}; "
                                      "if it has a passphrase, run at a terminal (gpg-agent "
                                      f"asks), or give {setting('passphrase_file')}, or set "
                                      f"{PASSPHRASE_ENV} (for CI)"])
        return armored

    def _passphrase(self) -> str | None:
        """The passphrase from ``--passphrase-file`` or the environment; None to let the
        agent ask (or the key needs none)."""
        if self.passphrase_file is not None:
            try:
                text = read_regular(self.passphrase_file, _MAX_PASSPHRASE_FILE)
            except FileTooLargeError:
                raise UsageError(f"{setting('passphrase_file')} {self.passphrase_file}: too "
                                 "large for a passphrase file") from None
            except OSError as exc:
                raise UsageError(f"{setting('passphrase_file')} {self.passphrase_file}: "
                                 f"{exc.strerror or exc}") from None
            lines = text.decode("utf-8", "replace").splitlines()
            return lines[0] if lines else ""
        return os.environ.get(PASSPHRASE_ENV)


def _terminal() -> str | None:
    """The terminal the operator works at (standard input, else error), or None."""
    for stream in (sys.stdin, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if stream is not None and os.isatty(stream.fileno()):
                return os.ttyname(stream.fileno())
    return None
