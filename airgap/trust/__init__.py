"""What proves a byte is the one its publisher made: digests, Elastic's ``.sha512`` files,
OpenPGP signatures checked by GnuPG in an isolated home, and the operator's signing key.

Used by every stage; it imports nothing of airgap's but the shared modules.
"""

from airgap.trust.checksums import parse_elastic_sha512, read_elastic_sha512
from airgap.trust.digests import Digests, Hasher, hash_file
from airgap.trust.gpg import TrustedKey, Verifier, elastic_key_text, gpg_binary
from airgap.trust.signing import OperatorKey

__all__ = [
    "Digests", "Hasher", "OperatorKey", "TrustedKey", "Verifier", "elastic_key_text",
    "gpg_binary", "hash_file", "parse_elastic_sha512", "read_elastic_sha512",
]
