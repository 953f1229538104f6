"""The signed message airgap hands GnuPG is checked by the real gpg exactly as the
detached signature it is made from; anything unusual is left to GnuPG's own check."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from airgap.errors import SignatureError
from airgap.trust import openpgp
from airgap.trust.gpg import Verifier
from tests.peers.gpgkeys import SigningKey


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "fleet-server-9.0.0-linux-x86_64.tar.gz"
    path.write_bytes(os.urandom(300_000))
    return path


def gpg_verdict(key: SigningKey, message: bytes) -> set[str]:
    """The status keywords the real gpg prints when checking ``message`` from stdin."""
    done = subprocess.run(["gpg", "--homedir", str(key.home), "--batch", "--status-fd", "1",
                           "--verify"], input=message, capture_output=True, check=False)
    return {line.split()[1] for line in done.stdout.decode().splitlines()
            if line.startswith("[GNUPG:] ")}


def test_detached_signature_checks_as_a_signed_message(data: Path, signer: SigningKey) -> None:
    signature = signer.sign(data)
    content = data.read_bytes()
    prefix = openpgp.signed_message_prefix(signature.read_bytes(), len(content))
    assert prefix is not None
    assert "GOODSIG" in gpg_verdict(signer, prefix + content)
    altered = bytearray(content)
    altered[len(altered) // 2] ^= 1
    verdict = gpg_verdict(signer, prefix + bytes(altered))
    assert "BADSIG" in verdict and "GOODSIG" not in verdict
    assert "GOODSIG" not in gpg_verdict(signer, prefix + content[:-1])


def test_armour_is_removed_as_gpg_dearmor_does(data: Path, signer: SigningKey) -> None:
    armoured = signer.sign(data).read_bytes()
    binary = subprocess.run(["gpg", "--dearmor"], input=armoured, capture_output=True,
                            check=True).stdout
    assert openpgp.dearmor(armoured) == binary
    assert openpgp.document_signature(armoured) == binary
    raw = signer.sign(data, data.with_name("raw.sig"), armor=False).read_bytes()
    assert openpgp.document_signature(raw) == raw


def test_what_is_not_one_binary_document_signature_is_left_to_gnupg(
        data: Path, signer: SigningKey, attacker: SigningKey, tmp_path: Path) -> None:
    armoured = signer.sign(data).read_bytes()
    raw = signer.sign(data, tmp_path / "a.sig", armor=False).read_bytes()
    other = attacker.sign(data, tmp_path / "b.sig", armor=False).read_bytes()
    text_mode = signer.sign(data, tmp_path / "t.sig", armor=False,
                            options=("--textmode",)).read_bytes()
    inline = tmp_path / "inline.gpg"
    signer._gpg("--local-user", signer.fingerprint, "--sign", "--output", str(inline),
                str(data))
    lines = armoured.splitlines()
    crc_line = next(i for i, line in enumerate(lines) if line.startswith(b"="))
    bad_crc = lines.copy()
    bad_crc[crc_line] = b"=" + base64.b64encode(b"\x00\x00\x00")
    bad_base64 = lines.copy()
    bad_base64[crc_line - 1] = bad_base64[crc_line - 1][:-2] + b"*="
    refused = {
        "two signatures": raw + other,
        "a text-mode signature": text_mode,
        "a signed message": inline.read_bytes(),
        "a cut packet": raw[:-1],
        "trailing bytes": raw + b"\x00",
        "a wrong armour checksum": b"\n".join(bad_crc),
        "broken base64": b"\n".join(bad_base64),
        "nothing": b"",
        "not OpenPGP": b"hello",
    }
    for what, text in refused.items():
        assert openpgp.document_signature(text) is None, what
        assert openpgp.signed_message_prefix(text, 10) is None, what


def test_literal_packet_lengths() -> None:
    assert openpgp.literal_header(0) == b"\xcb\xff\x00\x00\x00\x06b\x00\x00\x00\x00\x00"
    assert openpgp.literal_header(openpgp.MAX_LITERAL) is not None
    assert openpgp.literal_header(openpgp.MAX_LITERAL + 1) is None
    assert openpgp.literal_header(-1) is None


def test_signatures_gnupg_checks_itself_still_verify(
        data: Path, signer: SigningKey, signer_public_key: Path, tmp_path: Path) -> None:
    text_mode = signer.sign(data, tmp_path / "t.asc", options=("--textmode",))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with Verifier([signer_public_key]) as verifier:
        assert verifier.verify(data, text_mode).fingerprint == signer.fingerprint
        assert verifier.verify(empty, signer.sign(empty)).fingerprint == signer.fingerprint


def test_a_signature_gpg_gives_up_on_is_refused_not_a_crash(
        signer: SigningKey, signer_public_key: Path, tmp_path: Path) -> None:
    # Its packet frames well, but its hashed-subpacket length runs past its end: gpg
    # stops before reading the data, which then meets a closed pipe.
    data = tmp_path / "big.tar.gz"
    data.write_bytes(os.urandom(8 << 20))
    raw = signer.sign(data, tmp_path / "good.sig", armor=False).read_bytes()
    parsed = openpgp._packet(raw)
    assert parsed is not None
    _, body, end = parsed
    start = end - len(body)
    broken = bytearray(raw)
    broken[start + 4:start + 6] = b"\xff\xff"
    assert openpgp.document_signature(bytes(broken)) is not None
    signature = tmp_path / "broken.sig"
    signature.write_bytes(bytes(broken))
    with Verifier([signer_public_key]) as verifier, pytest.raises(SignatureError):
        verifier.verify(data, signature)


def test_armour_headers_must_be_headers(data: Path, signer: SigningKey) -> None:
    lines = signer.sign(data).read_bytes().splitlines()
    with_version = [lines[0], b"Version: GnuPG v2", b"Comment: fine", *lines[1:]]
    assert openpgp.dearmor(b"\n".join(with_version)) is not None
    garbage = [lines[0], b"this is not a header", *lines[1:]]
    assert openpgp.dearmor(b"\n".join(garbage)) is None


def test_verifier_takes_the_signed_message_path_for_ordinary_signatures(
        data: Path, signer: SigningKey, signer_public_key: Path, tmp_path: Path) -> None:
    text_mode = signer.sign(data, tmp_path / "t.asc", options=("--textmode",))
    with Verifier([signer_public_key]) as verifier:
        taken = verifier._check_as_message(data, signer.sign(data))
        assert taken is not None and taken.valid and taken.returncode == 0
        assert verifier._check_as_message(data, text_mode) is None


def test_a_file_of_many_chunks_goes_whole_and_in_order(
        signer: SigningKey, signer_public_key: Path, tmp_path: Path) -> None:
    # Several of the chunks the message is copied to gpg in, and a short last one.
    data = tmp_path / "elastic-agent-9.0.0-linux-arm64.tar.gz"
    content = os.urandom(3 * (1 << 20) + 12_345)
    data.write_bytes(content)
    signature = signer.sign(data)
    with Verifier([signer_public_key]) as verifier:
        taken = verifier._check_as_message(data, signature)
        assert taken is not None and taken.valid
        for where in (10, (1 << 20) + 7, len(content) - 1):
            altered = bytearray(content)
            altered[where] ^= 0x80
            data.write_bytes(bytes(altered))
            assert verifier._check_as_message(data, signature) is None  # bad: gpg's own say
            with pytest.raises(SignatureError, match="does not match its signature"):
                verifier.verify(data, signature)
