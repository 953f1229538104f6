"""GnuPG in an isolated home: the pinned Elastic key, trusted keys only, clear refusals."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from airgap import elastic
from airgap.errors import SignatureError, ToolMissingError, UsageError
from airgap.signatures import Verifier, elastic_key_text, gpg_binary
from tests.peers.gpgkeys import SigningKey


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "elastic-agent-9.0.0-linux-x86_64.tar.gz"
    path.write_bytes(os.urandom(50_000))
    return path


def test_bundled_elastic_key_is_pinned_by_fingerprint() -> None:
    with Verifier() as verifier:
        (key,) = verifier.keys.values()
    assert key.fingerprint == "46095ACC8548582C1A2699A9D27D666CD88E42B4"
    assert key.fingerprint == elastic.ELASTIC_KEY_FINGERPRINT
    assert key.is_elastic and key.key_id == "D27D666CD88E42B4"
    assert key.uids == ("Elasticsearch (Elasticsearch Signing Key) <dev_ops@elasticsearch.org>",)
    assert "BEGIN PGP PUBLIC KEY BLOCK" in key.armored
    assert "BEGIN PGP PUBLIC KEY BLOCK" in elastic_key_text()


def test_signature_by_a_trusted_key_is_accepted(data: Path, signer: SigningKey,
                                                signer_public_key: Path) -> None:
    signature = signer.sign(data)
    with Verifier([signer_public_key]) as verifier:
        assert verifier.verify(data, signature).fingerprint == signer.fingerprint


def test_signature_by_an_unknown_key_is_refused(data: Path, attacker: SigningKey,
                                                signer_public_key: Path) -> None:
    signature = attacker.sign(data)
    with Verifier([signer_public_key]) as verifier, \
            pytest.raises(SignatureError, match="signed by key ID .* which is not a trusted key"):
        verifier.verify(data, signature)


def test_altered_file_missing_and_corrupt_signatures_are_refused(
        data: Path, signer: SigningKey, signer_public_key: Path, tmp_path: Path) -> None:
    signature = signer.sign(data)
    with Verifier([signer_public_key]) as verifier:
        altered = tmp_path / "altered"
        content = data.read_bytes()
        altered.write_bytes(content[:-1] + bytes([content[-1] ^ 0xFF]))
        with pytest.raises(SignatureError, match="does not match its signature"):
            verifier.verify(altered, signature, name=data.name)
        with pytest.raises(SignatureError, match="the signature nothing.asc is missing"):
            verifier.verify(data, tmp_path / "nothing.asc")
        garbage = tmp_path / "garbage.asc"
        lines = signature.read_text().splitlines()
        garbage.write_text("\n".join([*lines[:2], "AAAA" + lines[2][4:], *lines[3:]]) + "\n")
        with pytest.raises(SignatureError,
                           match=f"{data.name}: garbage.asc is not a valid OpenPGP signature"):
            verifier.verify(data, garbage)


def test_a_key_file_without_a_key_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.asc"
    empty.write_text("not a key\n")
    with pytest.raises(UsageError, match="no OpenPGP public key found"):
        Verifier([empty])


def test_users_own_gnupg_home_is_never_used(data: Path, attacker: SigningKey, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # A user keyring that trusts the attacker, as HOME and as GNUPGHOME.
    home = tmp_path / "home"
    gnupg = home / ".gnupg"
    gnupg.mkdir(parents=True, mode=0o700)
    public = attacker.export_public(tmp_path / "attacker.asc")
    subprocess.run(["gpg", "--homedir", str(gnupg), "--batch", "--import", str(public)],
                   check=True, capture_output=True)
    # That import started an agent in the user's home: stop it, then see none come back.
    subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "gpg-agent"],
                   check=True, capture_output=True)
    before = {p: p.read_bytes() for p in gnupg.rglob("*") if p.is_file()}
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GNUPGHOME", str(gnupg))
    signature = attacker.sign(data)
    with Verifier() as verifier, pytest.raises(SignatureError, match="not a trusted key"):
        verifier.verify(data, signature)
    after = {p: p.read_bytes() for p in gnupg.rglob("*") if p.is_file()}
    assert after == before
    agents = subprocess.run(["pgrep", "-f", f"gpg-agent --homedir {gnupg}"],
                            capture_output=True, text=True).stdout
    assert agents == "", "an agent was started in the user's GnuPG home"


def test_missing_gpg_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissingError, match="gpg \\(GnuPG\\) is not installed") as caught:
        gpg_binary()
    assert "apt-get install gnupg" in str(caught.value)
