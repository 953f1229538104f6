"""The bundle: the folder a fetch writes and everything after reads. Its layout and lock,
``SHA512SUMS``, the typed ``bundle.json``, and the two readers that need nothing else:
``airgap verify`` (:mod:`airgap.bundle.verify`) and ``airgap inspect``.
"""

from airgap.bundle.description import BundleDescription, DescriptionError, read_description
from airgap.bundle.lock import BundleLock
from airgap.bundle.sums import format_sums, parse_sums

__all__ = ["BundleDescription", "BundleLock", "DescriptionError", "format_sums",
           "parse_sums", "read_description"]
