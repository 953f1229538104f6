"""Elastic's .sha512 format, read as Elastic Agent reads it."""

from __future__ import annotations

import pytest

from airgap.errors import ChecksumMismatchError
from airgap.trust.checksums import parse_elastic_sha512

NAME = "elastic-agent-9.0.0-linux-x86_64.tar.gz"
HEX = "ab" * 64


@pytest.mark.parametrize("text", [
    f"{HEX}  {NAME}",            # Elastic's: two spaces, no newline
    f"{HEX}  {NAME}\n",
    f"{HEX} *{NAME}",            # binary-mode marker
    f"{HEX.upper()}\t{NAME}",
])
def test_accepted_forms(text: str) -> None:
    assert parse_elastic_sha512(text, NAME, source="x") == HEX


@pytest.mark.parametrize(("text", "message"), [
    (f"{HEX}", "got 1 field"),
    (f"{HEX}  {NAME} extra", "got 3 field"),
    (f"{HEX[:-1]}  {NAME}", "is not a SHA-512 digest"),
    (f"{'zz' * 64}  {NAME}", "is not a SHA-512 digest"),
    (f"{HEX}  filebeat-9.0.0-linux-x86_64.tar.gz", "it is the checksum of another file"),
    ("", "got 0 field"),
])
def test_refused_forms(text: str, message: str) -> None:
    with pytest.raises(ChecksumMismatchError, match=message):
        parse_elastic_sha512(text, NAME, source=f"{NAME}.sha512")
