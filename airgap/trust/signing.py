"""The operator's signature of a bundle: ``SHA512SUMS.asc``, made with the operator's key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gnupg

from airgap.errors import UsageError, setting
from airgap.files import atomic_write
from airgap.trust import openpgp
from airgap.trust.gpg import gpg_binary

PASSPHRASE_ENV = "AIRGAP_SIGN_PASSPHRASE"  # noqa: S105 - a variable name


@dataclass(frozen=True)
class OperatorKey:
    """The operator's key that signs SHA512SUMS, in the GnuPG home the operator names."""

    key_id: str
    gnupg_home: Path | None

    def check(self) -> None:
        """Sign a few bytes now, so that a missing key or passphrase is found before a
        fetch downloads anything."""
        self.sign(b"airgap: can this key sign?\n")

    def sign_to(self, data: bytes, signature: Path) -> None:
        """Write an ASCII-armoured detached signature of ``data`` to ``signature``."""
        atomic_write(signature, self.sign(data))

    def sign(self, data: bytes) -> bytes:
        """An ASCII-armoured detached signature of ``data``.

        The key is taken from the GnuPG home the operator names, never from a default one.
        A passphrase, if the key has one, comes from ``$AIRGAP_SIGN_PASSPHRASE``.
        """
        home = self.gnupg_home
        if home is None:
            raise UsageError(f"{setting('sign_with')} needs {setting('gnupg_home')}: airgap "
                             "never uses your default GnuPG keyring on its own")
        if not home.is_dir():
            raise UsageError(f"{setting('gnupg_home')} {home}: no such directory")
        gpg = gnupg.GPG(gpgbinary=gpg_binary(), gnupghome=str(home))
        # --local-user, not python-gnupg's keyid (--default-key): for a key the home lacks,
        # gpg ignores --default-key and signs with whatever key it has.
        result = gpg.sign(data, detach=True, binary=False, extra_args=["--local-user",
                                                                       self.key_id],
                          passphrase=os.environ.get(PASSPHRASE_ENV))
        armored = bytes(result.data or b"") if result else b""
        if not armored.startswith(openpgp.ARMOR_BEGIN):
            problem = (result.status or "no signature was made") if result is not None else ""
            raise UsageError(f"signing with key {self.key_id} failed: {problem}",
                             details=[f"check that {home} holds the secret key {self.key_id}, "
                                      f"and set {PASSPHRASE_ENV} if it has a passphrase"])
        return armored
