"""Who vouches, from outside a bundle, for the files that leave it.

The isolated side trusts what it is told from outside the bundle only: the Elastic key
pinned in airgap, the signer keys the user names (``trust_signers``), and the operator
keys that signed ``SHA512SUMS`` (``trust_keys``). Everything the bundle says about
itself (keys/, bundle.json, SHA512SUMS) can be rewritten by whoever held the medium, so
it counts only once one of those vouches for it. See docs/security.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from airgap.bundle import layout
from airgap.errors import AirgapError, setting
from airgap.trust.gpg import TrustedKey, Verifier

#: The file that names the image by digest: every other file of it follows from it.
IMAGE_INDEX = f"{layout.IMAGES}/index.json"
_TRUST = setting("trust_keys")
_SIGNER = setting("trust_signers")
_SIGN = setting("sign_with")


def operator_signature(root: Path, regular: set[str], trust_keys: Iterable[Path],
                       add: Callable[[str, str, str], None]) -> str:
    """Check ``SHA512SUMS.asc`` with the ``trust_keys`` (none: not checked); report a
    problem through ``add``. Returns ``valid``, ``invalid``, ``absent`` or why it was not
    checked. A key file that cannot be used is the caller's error, not the bundle's."""
    keys = list(trust_keys)
    if layout.SUMS_SIGNATURE not in regular:
        if keys:
            add(layout.SUMS_SIGNATURE, "operator-signature",
                f"{_TRUST} was given but the bundle has no SHA512SUMS.asc")
        return "absent"
    if not keys:
        return f"present, not checked (give {_TRUST})"
    if layout.SUMS not in regular:
        add(layout.SUMS_SIGNATURE, "operator-signature", "there is no SHA512SUMS for it to sign")
        return "invalid"
    with Verifier(keys, include_elastic=False, untrusted_fix=(
            f"give {_TRUST} with the public key that signed {layout.SUMS_SIGNATURE}")) \
            as verifier:
        try:
            verifier.verify(root / layout.SUMS, root / layout.SUMS_SIGNATURE, name=layout.SUMS)
        except AirgapError as exc:
            add(layout.SUMS_SIGNATURE, "operator-signature", exc.message)
            return "invalid"
    return "valid"


def unvouched_image(regular: set[str]) -> str:
    """Why the image cannot be trusted without ``trust_keys``, and what would trust it."""
    fix = (f"give {_TRUST} with the public key that signed SHA512SUMS.asc"
           if layout.SUMS_SIGNATURE in regular else
           f"the bundle has no SHA512SUMS.asc: fetch it again with {_SIGN} and check it here "
           f"with {_TRUST}")
    return ("names the image by digest, and nothing from outside the bundle vouches for it "
            "(Elastic does not sign the image; a bundle rewritten whole would carry another "
            f"image): {fix}")


def unvouched_signer(key: TrustedKey, regular: set[str]) -> str:
    """Why a file signed by a key from keys/ cannot be trusted, and what would trust it."""
    who = f"{key.fingerprint} ({key.uids[0]})" if key.uids else key.fingerprint
    operator = (f", or {_TRUST} with the public key that signed SHA512SUMS.asc"
                if layout.SUMS_SIGNATURE in regular else "")
    return (f"signed by {who}, a key that travels in the bundle's {layout.KEYS}/ and that "
            f"nothing from outside the bundle vouches for: give {_SIGNER} with your own copy "
            f"of that public key{operator}")


#: The folders whose files no key airgap checks signs: only the operator vouches for them.
UNSIGNED_AREAS = {
    layout.SECURITY: ("Elastic Defend's artifacts, which Elastic signs only for Endpoint "
                      "(each manifest.zip carries its own signature, so Endpoint refuses a "
                      "changed one, but not an older genuine one that would roll its "
                      "protection back)"),
    layout.TOOLS: ("airgap's wheelhouse, which nobody signs (install.sh checks each wheel "
                   "against requirements.txt, which travels beside them)"),
}


def unvouched_description(regular: set[str]) -> str:
    """Why ``bundle.json`` cannot be trusted for ``config_dir`` without ``trust_keys``."""
    fix = (f"give {_TRUST} with the public key that signed SHA512SUMS.asc"
           if layout.SUMS_SIGNATURE in regular else
           f"the bundle has no SHA512SUMS.asc: fetch it again with {_SIGN} and check it here "
           f"with {_TRUST}")
    return (f"{setting('config_dir')} writes what it says (the stack version, the package "
            "versions Kibana is pinned to, whether Elastic Defend's artifacts are there), and "
            f"nothing from outside the bundle vouches for it: {fix}")


def unvouched_area(area: str, regular: set[str]) -> str:
    """Why the files of ``area`` (one of :data:`UNSIGNED_AREAS`) cannot be trusted without
    ``trust_keys``, and what would trust them."""
    fix = (f"give {_TRUST} with the public key that signed SHA512SUMS.asc"
           if layout.SUMS_SIGNATURE in regular else
           f"the bundle has no SHA512SUMS.asc: fetch it again with {_SIGN} and check it here "
           f"with {_TRUST}")
    return (f"{UNSIGNED_AREAS[area]}: nothing from outside the bundle vouches for them: {fix}")
