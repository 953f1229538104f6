"""Elastic Defend's artifact manifests: read strictly, checked against the bundle, aged.

A manifest is a zip (``artifacts-<version>.zip``) holding ``manifest.json`` and the
signature Endpoint checks it with (``manifest.sig``). ``manifest.json`` names the
``manifest_version`` and every artifact: its ``relative_url`` below the server's root, the
SHA-256 and size of the file as served (``encoded_*``) and of its content once
decompressed (``decoded_*``), and the compression (``zlib`` or ``none``). Everything in
it is hostile until checked: sizes are bounded, every URL must stay below the root.
Fetch (:mod:`airgap.fetch.defend`), verify and load read it through this module; the
format and its sources are in docs/defend.md.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from airgap import elastic
from airgap.bundle.description import BundleDescription, parse_timestamp
from airgap.bundle.layout import DOWNLOADS, SECURITY
from airgap.errors import ServerResponseError

MAX_MANIFEST_ZIP = 16 << 20
MAX_MANIFEST_JSON = 32 << 20
MAX_ARTIFACTS = 10_000
MAX_ARTIFACT_SIZE = 4 << 30
MAX_URL = 1024
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
# What a relative_url may hold: a plain path, no query, no escapes, no control characters.
_URL_PART = re.compile(r"[A-Za-z0-9._~+=,@-]+\Z")


class BadDefendManifest(ServerResponseError):
    """A Defend manifest zip that is not what Elastic publishes."""


@dataclass(frozen=True)
class DefendEntry:
    """One artifact a manifest lists; ``path`` is its ``relative_url`` without the
    leading ``/``."""

    identifier: str
    path: str
    encoded_sha256: str
    encoded_size: int
    decoded_sha256: str
    decoded_size: int
    compression: str

    @property
    def bundle_path(self) -> str:
        """Where the artifact lives in a bundle: ``security/<path>``."""
        return f"{SECURITY}/{self.path}"

    def same_file(self, other: DefendEntry) -> bool:
        """Whether two entries describe the same bytes."""
        return (self.encoded_sha256, self.encoded_size, self.decoded_sha256,
                self.decoded_size, self.compression) == (
            other.encoded_sha256, other.encoded_size, other.decoded_sha256,
            other.decoded_size, other.compression)


@dataclass(frozen=True)
class DefendManifestFile:
    """What a manifest zip says."""

    manifest_version: str
    schema_version: str
    entries: tuple[DefendEntry, ...]
    signed: bool  # holds manifest.sig, which Endpoint checks


def read_manifest_zip(path: Path, name: str) -> DefendManifestFile:
    """The manifest in the zip at ``path`` (``name`` names it in messages); raises
    :class:`BadDefendManifest` for anything that is not one."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BadDefendManifest(f"{name}: not a readable zip: {exc}") from None
    return _read(path, size, name)


def read_manifest_data(data: bytes, name: str) -> DefendManifestFile:
    """:func:`read_manifest_zip` of a zip held in memory (a server's answer)."""
    return _read(io.BytesIO(data), len(data), name)


def _read(source: Path | BinaryIO, size: int, name: str) -> DefendManifestFile:
    try:
        if size > MAX_MANIFEST_ZIP:
            raise BadDefendManifest(f"{name}: larger than {MAX_MANIFEST_ZIP} bytes: not a "
                                    "Defend artifact manifest")
        with zipfile.ZipFile(source) as archive:
            names = archive.namelist()
            if len(names) != len(set(names)):
                raise BadDefendManifest(f"{name}: a member is in the zip twice")
            if elastic.DEFEND_MANIFEST_MEMBER not in names:
                raise BadDefendManifest(f"{name}: the zip holds no "
                                        f"{elastic.DEFEND_MANIFEST_MEMBER}")
            with archive.open(elastic.DEFEND_MANIFEST_MEMBER) as member:
                data = member.read(MAX_MANIFEST_JSON + 1)
            signed = elastic.DEFEND_SIGNATURE_MEMBER in names
    except BadDefendManifest:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise BadDefendManifest(f"{name}: not a readable zip: {exc}") from None
    if len(data) > MAX_MANIFEST_JSON:
        raise BadDefendManifest(f"{name}: its {elastic.DEFEND_MANIFEST_MEMBER} is larger "
                                f"than {MAX_MANIFEST_JSON} bytes")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise BadDefendManifest(f"{name}: its {elastic.DEFEND_MANIFEST_MEMBER} is not "
                                "JSON") from None
    return _manifest(document, name, signed)


def _manifest(document: Any, name: str, signed: bool) -> DefendManifestFile:
    where = f"{name}: {elastic.DEFEND_MANIFEST_MEMBER}"
    if not isinstance(document, dict):
        raise BadDefendManifest(f"{where}: expected an object")
    version = document.get("manifest_version")
    schema = document.get("schema_version", "")
    artifacts = document.get("artifacts")
    if not isinstance(version, str) or not version or len(version) > 100:
        raise BadDefendManifest(f"{where}: no manifest_version")
    if not isinstance(schema, str) or len(schema) > 100:
        raise BadDefendManifest(f"{where}: schema_version is not a string")
    if not isinstance(artifacts, dict) or len(artifacts) > MAX_ARTIFACTS:
        raise BadDefendManifest(f"{where}: artifacts is not an object of at most "
                                f"{MAX_ARTIFACTS} artifacts")
    entries: dict[str, DefendEntry] = {}
    for identifier, raw in artifacts.items():
        entry = _entry(str(identifier), raw, f"{where}: artifacts.{str(identifier)[:80]}")
        earlier = entries.get(entry.path)
        if earlier is not None and not earlier.same_file(entry):
            raise BadDefendManifest(f"{where}: {earlier.identifier} and {entry.identifier} "
                                    f"name /{entry.path} with different contents")
        entries.setdefault(entry.path, entry)
    return DefendManifestFile(version, schema, tuple(entries.values()), signed)


def _entry(identifier: str, raw: Any, where: str) -> DefendEntry:
    if not isinstance(raw, Mapping):
        raise BadDefendManifest(f"{where}: expected an object")

    def digest(key: str) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not _SHA256.match(value):
            raise BadDefendManifest(f"{where}.{key}: not a SHA-256 in hex")
        return value

    def size(key: str) -> int:
        value = raw.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not \
                0 <= value <= MAX_ARTIFACT_SIZE:
            raise BadDefendManifest(f"{where}.{key}: not a size of at most "
                                    f"{MAX_ARTIFACT_SIZE} bytes")
        return value

    compression = raw.get("compression_algorithm")
    if compression not in elastic.DEFEND_COMPRESSIONS:
        raise BadDefendManifest(f"{where}.compression_algorithm: {compression!r} is not one "
                                f"of {', '.join(elastic.DEFEND_COMPRESSIONS)}")
    encryption = raw.get("encryption_algorithm", "none")
    if encryption not in elastic.DEFEND_ENCRYPTIONS:
        raise BadDefendManifest(f"{where}.encryption_algorithm: {encryption!r} is not "
                                "supported")
    entry = DefendEntry(identifier, relative_path(raw.get("relative_url"), where),
                        digest("encoded_sha256"), size("encoded_size"),
                        digest("decoded_sha256"), size("decoded_size"), str(compression))
    if compression == "none" and (entry.encoded_sha256, entry.encoded_size) != \
            (entry.decoded_sha256, entry.decoded_size):
        raise BadDefendManifest(f"{where}: uncompressed, yet its encoded and decoded hashes "
                                "differ")
    return entry


def relative_path(value: Any, where: str) -> str:
    """A ``relative_url`` as a path below the server's root, refusing anything that could
    leave it or mean something else on another server."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > MAX_URL:
        raise BadDefendManifest(f"{where}.relative_url: not a path like "
                                "/downloads/endpoint/...")
    parts = value[1:].split("/")
    if any(part in (".", "..") or not _URL_PART.match(part) for part in parts):
        raise BadDefendManifest(f"{where}.relative_url: {value[:120]!r} is not a plain path "
                                "below the server's root")
    path = "/".join(parts)
    if parts[0] != DOWNLOADS or len(parts) < 2:
        # Endpoints find the artifacts below /downloads/ (Elastic's layout), which is what
        # load --artifacts lays out and airgap serve serves: anything else would be lost.
        raise BadDefendManifest(f"{where}.relative_url: {value[:120]!r} is not below "
                                f"/{DOWNLOADS}/, where Elastic Defend's artifacts lie and a "
                                "mirror serves them")
    if elastic.is_defend_manifest_path(path):
        raise BadDefendManifest(f"{where}.relative_url: {value[:120]!r} is where a manifest "
                                "lies, not an artifact")
    return path


# -- in a bundle -------------------------------------------------------------------------------


def unsigned_warning(name: str) -> str:
    """The warning for a manifest zip without ``manifest.sig`` (docs/defend.md: whether
    Elastic's endpoint zips always carry one is not settled, so it is not refused)."""
    return (f"{name}: the zip holds no {elastic.DEFEND_SIGNATURE_MEMBER}: Elastic Endpoint "
            "checks the manifest's signature and may refuse this manifest")


def check_bundle(root: Path, description: BundleDescription, regular: set[str],
                 sizes: Mapping[str, int], sha256: Mapping[str, str],
                 problem: Callable[[str, str, str], None]) -> list[str]:
    """Every artifact each recorded manifest lists must be in the bundle with the size and
    SHA-256 the manifest gives; ``problem(path, kind, message)`` hears what is not. Returns
    the warnings (a manifest without its signature)."""
    warnings = []
    for record in description.defend:
        if record.path not in regular:
            continue  # missing: already reported from SHA512SUMS
        try:
            manifest = read_manifest_zip(root / record.path, record.path)
        except ServerResponseError as exc:
            problem(record.path, "defend", exc.message)
            continue
        if not manifest.signed:
            warnings.append(unsigned_warning(record.path))
        if manifest.manifest_version != record.manifest_version:
            problem(record.path, "defend", f"holds manifest_version "
                                           f"{manifest.manifest_version}, bundle.json records "
                                           f"{record.manifest_version}")
        for entry in manifest.entries:
            path = entry.bundle_path
            if path not in regular:
                problem(path, "defend", f"listed by {record.path} but not in the bundle: "
                                        "endpoints would fail to download it")
            elif sizes.get(path) is not None and sizes[path] != entry.encoded_size:
                problem(path, "defend", f"{sizes[path]} bytes, {record.path} says "
                                        f"{entry.encoded_size}")
            elif sha256.get(path) is not None and sha256[path] != entry.encoded_sha256:
                problem(path, "defend", f"its SHA-256 differs from what {record.path} says")
    return warnings


def stale_warnings(description: BundleDescription,
                   now: datetime.datetime | None = None) -> list[str]:
    """A warning for each manifest fetched more than ``DEFEND_STALE_DAYS`` ago."""
    moment = now or datetime.datetime.now(datetime.UTC)
    warnings = []
    for record in description.defend:
        age = (moment - parse_timestamp(record.fetched)).days
        if age > elastic.DEFEND_STALE_DAYS:
            warnings.append(f"Elastic Defend's protection artifacts for Endpoint "
                            f"{record.endpoint_version} (manifest_version "
                            f"{record.manifest_version}) were fetched {age} days ago, on "
                            f"{record.fetched[:10]}: Elastic advises updating them at least "
                            f"every {elastic.DEFEND_STALE_DAYS} days; fetch the bundle again")
    return warnings

