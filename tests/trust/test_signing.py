"""The operator's signature: a passphrase from a file, the environment, or gpg-agent asking
at a terminal through pinentry, as ``gpg --sign`` does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from airgap.errors import UsageError
from airgap.trust.signing import OperatorKey
from tests.conftest import ManifestMaker, start_airgap
from tests.fetch.test_run import site_manifest
from tests.peers.artifacts import ArtifactServer
from tests.peers.epr import EprServer
from tests.peers.registry_front import RegistryFront

PASSPHRASE = "correct horse battery staple"


class PassphraseKey:
    """A signing key with a passphrase, in a short-named home of its own."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="ag-pp-", dir="/tmp"))
        self.home.chmod(0o700)
        self._gpg("--pinentry-mode", "loopback", "--passphrase", PASSPHRASE,
                  "--quick-generate-key", "ops <ops@example.test>", "ed25519", "sign", "never")
        listing = self._gpg("--with-colons", "--list-keys").stdout
        self.fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                                if line.startswith("fpr:"))

    def _gpg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["gpg", "--homedir", str(self.home), "--batch", "--yes", *args],
                              check=True, capture_output=True, text=True)

    def forget(self) -> None:
        """Make gpg-agent forget the passphrase (so that the next signing must get it)."""
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
                       check=False, capture_output=True)

    def valid(self, data: Path, signature: Path) -> bool:
        return subprocess.run(["gpg", "--homedir", str(self.home), "--batch", "--verify",
                               str(signature), str(data)], capture_output=True).returncode == 0

    def close(self) -> None:
        self.forget()
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def key() -> Iterator[PassphraseKey]:
    made = PassphraseKey()
    made.forget()
    yield made
    made.close()


def sign(key: PassphraseKey, tmp_path: Path, **options: object) -> Path:
    data = tmp_path / "SHA512SUMS"
    data.write_text("0" * 128 + "  bundle.json\n")
    OperatorKey(key.fingerprint, key.home, **options).sign_to(  # type: ignore[arg-type]
        data.read_bytes(), tmp_path / "SHA512SUMS.asc")
    return data


def test_a_passphrase_file_for_scripts(key: PassphraseKey, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRGAP_SIGN_PASSPHRASE", raising=False)
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    data = sign(key, tmp_path, passphrase_file=secret)
    assert key.valid(data, tmp_path / "SHA512SUMS.asc")


def test_the_variable_for_ci_reaches_gpg_on_a_pipe_never_in_its_environment(
        key: PassphraseKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = tmp_path / "environment"
    spy = tmp_path / "bin"
    spy.mkdir()
    real = shutil.which("gpg")
    (spy / "gpg").write_text(f"#!/bin/sh\n/usr/bin/env >> {seen}\necho \"$@\" >> {seen}\n"
                             f"exec {real} \"$@\"\n")
    (spy / "gpg").chmod(0o755)
    monkeypatch.setenv("PATH", f"{spy}:{os.environ['PATH']}")
    monkeypatch.setenv("AIRGAP_SIGN_PASSPHRASE", PASSPHRASE)
    data = sign(key, tmp_path)
    child = seen.read_text()  # before the check below, which runs gpg from here too
    assert "--passphrase-fd" in child
    assert PASSPHRASE not in child and "AIRGAP_SIGN_PASSPHRASE" not in child
    assert key.valid(data, tmp_path / "SHA512SUMS.asc")


def test_a_wrong_passphrase_says_where_one_comes_from(key: PassphraseKey, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRGAP_SIGN_PASSPHRASE", raising=False)
    secret = tmp_path / "passphrase"
    secret.write_text("wrong\n")
    with pytest.raises(UsageError) as refused:
        sign(key, tmp_path, passphrase_file=secret)
    text = str(refused.value)
    assert "passphrase_file" in text and "AIRGAP_SIGN_PASSPHRASE" in text
    assert not (tmp_path / "SHA512SUMS.asc").exists()


def test_without_a_terminal_or_a_passphrase_it_fails_at_once(
        key: PassphraseKey, tmp_path: Path) -> None:
    # No terminal for pinentry, nothing given: an error, not a wait for nobody.
    script = ("import sys; from pathlib import Path; from airgap.trust.signing import "
              f"OperatorKey; OperatorKey({key.fingerprint!r}, Path({str(key.home)!r})).check()")
    env = {k: v for k, v in os.environ.items() if k != "AIRGAP_SIGN_PASSPHRASE"}
    result = subprocess.run([sys.executable, "-c", script], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60, env=env,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode != 0
    assert "signing with key" in result.stderr and "terminal" in result.stderr


FAKE_PINENTRY = """#!/bin/sh
# Speaks the pinentry protocol to gpg-agent: notes what it is asked, answers the passphrase.
echo "OK Pleased to meet you"
while read -r line; do
  case "$line" in
    GETPIN*) echo GETPIN >> {log}; echo "D {passphrase}"; echo OK ;;
    "OPTION ttyname="*) echo "$line" >> {log}; echo OK ;;
    "GETINFO pid"*) echo "D $$"; echo OK ;;
    BYE*) echo OK; exit 0 ;;
    *) echo OK ;;
  esac
done
"""


def test_at_a_terminal_gpg_agent_asks_through_pinentry(
        key: PassphraseKey, make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRGAP_SIGN_PASSPHRASE", raising=False)
    log = tmp_path / "pinentry.log"
    pinentry = tmp_path / "pinentry"
    pinentry.write_text(FAKE_PINENTRY.format(log=log, passphrase=PASSPHRASE))
    pinentry.chmod(0o755)
    (key.home / "gpg-agent.conf").write_text(f"pinentry-program {pinentry}\n")
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             platforms={"arch": ["x86_64"]}, integrations=["nginx"])
    bundle = tmp_path / "bundle"
    primary, secondary = os.openpty()
    terminal = os.ttyname(secondary)
    shown: list[bytes] = []

    def read() -> None:  # what the terminal shows, so that the command never blocks on it
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        process = start_airgap("fetch", str(manifest), "-o", str(bundle), "--quiet",
                               "--sign-with", key.fingerprint, "--gnupg-home", str(key.home),
                               stdin=secondary, stdout=secondary, stderr=secondary)
        code = process.wait(timeout=120)
    finally:
        os.close(secondary)
        reader.join(5)
        os.close(primary)
    assert code == 0, b"".join(shown).decode(errors="replace")
    asked = log.read_text().splitlines()
    assert "GETPIN" in asked
    assert f"OPTION ttyname={terminal}" in asked
    assert key.valid(bundle / "SHA512SUMS", bundle / "SHA512SUMS.asc")
