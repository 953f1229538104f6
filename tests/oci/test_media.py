"""Digests from a registry name files in the bundle: only well-formed sha256 ones pass."""

from __future__ import annotations

import pytest

from airgap.errors import ServerResponseError
from airgap.oci import digest_hex

HEX = "ab" * 32


def test_a_sha256_digest_gives_its_hex() -> None:
    assert digest_hex(f"sha256:{HEX}") == HEX


@pytest.mark.parametrize("digest", [
    f"sha256:{HEX}\n",  # `$` alone would have let the newline through
    f"sha256:{HEX.upper()}",
    f"sha512:{HEX}{HEX}",
    f"sha256:{HEX[:-1]}",
    "sha256:../../../etc/passwd",
    f" sha256:{HEX}",
])
def test_anything_else_is_refused(digest: str) -> None:
    with pytest.raises(ServerResponseError, match="is not a sha256 digest"):
        digest_hex(digest, "manifest")
