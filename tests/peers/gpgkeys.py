"""Throwaway OpenPGP keys, each in its own GnuPG home, to sign what the stand-ins serve."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


class SigningKey:
    """An ed25519 signing key made for one test session; never touches ~/.gnupg."""

    def __init__(self, name: str = "airgap test signer", email: str = "signer@example.test"):
        # GnuPG puts its agent socket in the home: keep the path short.
        self.home = Path(tempfile.mkdtemp(prefix="ag-gpg-", dir="/tmp"))
        self.home.chmod(0o700)
        self.uid = f"{name} <{email}>"
        self._gpg("--passphrase", "", "--quick-generate-key", self.uid, "ed25519", "sign",
                  "never")
        listing = self._gpg("--with-colons", "--list-keys", self.uid).stdout
        self.fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                                if line.startswith("fpr:"))

    def _gpg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["gpg", "--homedir", str(self.home), "--batch", "--yes", *args],
                              check=True, capture_output=True, text=True)

    def export_public(self, path: Path) -> Path:
        """Write the ASCII-armoured public key to ``path``."""
        path.write_text(self._gpg("--armor", "--export", self.fingerprint).stdout)
        return path

    def sign(self, path: Path, signature: Path | None = None, *, armor: bool = True,
             options: tuple[str, ...] = ()) -> Path:
        """Write a detached signature of ``path`` (default ``path.asc``), ASCII-armoured
        unless ``armor`` is false; ``options`` go to gpg as they are."""
        out = signature or path.with_name(path.name + ".asc")
        self._gpg("--local-user", self.fingerprint, *(["--armor"] if armor else []), *options,
                  "--detach-sign", "--output", str(out), str(path))
        return out

    def close(self) -> None:
        """Stop this home's gpg-agent and delete the home."""
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
                       check=False, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)
