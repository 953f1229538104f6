"""What the signatures of a bundle are checked with: which files must be signed (by where
they lie, and by bundle.json), the keys in keys/ that count (those bundle.json records,
each file holding exactly its key, vouched for from outside), and the Elastic checksum
file beside each binary. :class:`~airgap.bundle.checks.BundleCheck` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from airgap.bundle import layout
from airgap.bundle.description import Item
from airgap.errors import AirgapError
from airgap.trust.checksums import read_elastic_sha512
from airgap.trust.gpg import Verifier

#: Reports one problem: the path, its kind, the message.
Add = Callable[[str, str, str], None]
_SIGNED_KINDS = ("artifact", "package")


@dataclass(frozen=True)
class Signed:
    """A file that must be signed, where its signature must be, and how bundle.json
    describes it (None when it does not)."""

    path: str
    signature: str
    item: Item | None


def must_be_signed(regular: set[str], items: Mapping[str, Item], add: Add) -> list[Signed]:
    """Every file the layout or bundle.json says is signed, with its signature's path."""
    wanted: dict[str, Signed] = {}
    for path in sorted(regular):
        signature = layout.signature_for(path)
        if signature is not None:
            wanted[path] = Signed(path, signature, items.get(path))
    for path, item in items.items():
        recorded = item.verification.signature
        if path in wanted:
            if recorded and recorded != wanted[path].signature:
                add(path, "description", f"bundle.json names {recorded} as its "
                                         f"signature, not {wanted[path].signature}")
        elif item.kind in _SIGNED_KINDS and path in regular:
            if not recorded:
                add(path, "description", "bundle.json names no signature for it")
            else:
                wanted[path] = Signed(path, recorded, item)
    return list(wanted.values())


def recorded_keys(root: Path, regular: set[str], verifier: Verifier, recorded: set[str],
                  outside: set[str], vouched: bool, add: Add) -> tuple[set[str], set[str]]:
    """The recorded keys whose files hold exactly them and that something from outside
    vouches for: those in ``outside`` (the pinned Elastic key, the signers the user
    named: never their bundle copies) and, when the operator's signature is valid
    (``vouched``), the others too; and the recorded keys nothing from outside vouches
    for (whose signatures are recognised, but not trusted)."""
    trusted: set[str] = set()
    unvouched: set[str] = set()
    prefix = f"{layout.KEYS}/"
    on_disk = {p.removeprefix(prefix) for p in regular
               if p.startswith(prefix) and "/" not in p.removeprefix(prefix)}
    expected = {f"{fpr}.asc" for fpr in recorded}
    for name in sorted(on_disk - expected):
        add(f"{prefix}{name}", "keys", "a key bundle.json does not record")
    for fingerprint in recorded:
        path = f"{prefix}{fingerprint}.asc"
        if f"{fingerprint}.asc" not in on_disk:
            add(path, "keys", "a recorded key is missing")
            continue
        try:
            found = verifier.fingerprints_in(root / path)
        except AirgapError as exc:
            add(path, "keys", exc.message)
            continue
        if found != [fingerprint]:
            add(path, "keys", f"holds {', '.join(found)}, not the recorded key "
                              f"{fingerprint}: keys/ was swapped")
            continue
        if fingerprint in outside:
            trusted.add(fingerprint)  # the copy from outside is the one used
            continue
        try:  # so that its signatures are recognised, trusted or not
            verifier.add_key_file(root / path)
        except AirgapError as exc:
            add(path, "keys", exc.message)
            continue
        if vouched:
            trusted.add(fingerprint)
        else:
            unvouched.add(fingerprint)
    return trusted, unvouched


def elastic_checksum(root: Path, regular: set[str], from_base: set[str], actual: str | None,
                     path: str, item: Item | None, add: Add) -> None:
    """An artifact's ``.sha512`` (which agents download too) must name and match it;
    ``actual``: the file's SHA-512 as hashed (None when it could not be read)."""
    checksum = layout.checksum_for(path)
    if checksum is None and item is not None and item.kind == "artifact":
        checksum = item.verification.checksum or None
    if checksum is None or (checksum not in regular and checksum in from_base):
        return
    if checksum not in regular:
        add(checksum, "missing", f"the Elastic checksum of {Path(path).name} is "
                                 "missing: agents download it to check the file")
        return
    if actual is None:
        return  # the file itself could not be read: already reported
    try:
        expected = read_elastic_sha512(layout.inside(root, checksum), Path(path).name)
    except (AirgapError, OSError) as exc:
        add(checksum, "signature", str(exc))
        return
    if expected != actual:
        add(checksum, "modified", f"does not match {Path(path).name}")
