"""Just enough of OpenPGP's packet format (RFC 4880) to hand GnuPG a signed message.

GnuPG 2.2 hashes the data of a *detached* signature one byte at a time (about 300 MB/s
here), but the contents of a literal data packet in large blocks (over 1 GB/s). A
detached signature over a file is, byte for byte, the signature of a message made of
that signature packet followed by a literal data packet holding the file (RFC 4880
§11.3, the "signature, then data" form): for a version 4 signature of a binary document
only the data itself is hashed, never the literal packet's name or date. So airgap
builds that message on the fly and GnuPG checks exactly the same thing, faster.

Anything unusual (several signatures, other packets, other signature versions or types,
a broken armour) is left to GnuPG's ordinary detached check, which then reports it.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

_SIGNATURE_TAG = 2
_BINARY_DOCUMENT = 0x00
ARMOR_BEGIN = b"-----BEGIN PGP SIGNATURE-----"
_ARMOR_END = b"-----END PGP SIGNATURE-----"
_ARMOR_HEADER = re.compile(rb"[A-Za-z][A-Za-z0-9-]*: ")
# A literal data packet body: format 'b', an empty file name, a zero date, then the data.
_LITERAL_PREFIX = b"b\x00\x00\x00\x00\x00"
MAX_LITERAL = 0xFFFFFFFF - len(_LITERAL_PREFIX)


def signed_message_prefix(signature: bytes, size: int) -> bytes | None:
    """What to send GnuPG before ``size`` bytes of data so that it checks the detached
    ``signature`` over them as a signed message; ``None`` when that cannot be done and
    the signature must be checked as a detached one."""
    packet = document_signature(signature)
    header = literal_header(size)
    if packet is None or header is None:
        return None
    return packet + header


def document_signature(text: bytes) -> bytes | None:
    """The single v4 binary-document signature packet in ``text`` (ASCII armour or
    binary), or ``None`` when ``text`` holds anything else."""
    raw = dearmor(text) if text.lstrip().startswith(ARMOR_BEGIN) else text
    if raw is None:
        return None
    parsed = _packet(raw)
    if parsed is None:
        return None
    tag, body, end = parsed
    if end != len(raw) or tag != _SIGNATURE_TAG or len(body) < 2:
        return None
    if body[0] != 4 or body[1] != _BINARY_DOCUMENT:
        return None
    return raw


def literal_header(size: int) -> bytes | None:
    """The header of a literal data packet that holds ``size`` bytes of data, or
    ``None`` when one packet of fixed length cannot hold that much."""
    if not 0 <= size <= MAX_LITERAL:
        return None
    # New-format packet, tag 11, five-octet length.
    return bytes([0xC0 | 11, 0xFF]) + struct.pack(">I", size + len(_LITERAL_PREFIX)) \
        + _LITERAL_PREFIX


def dearmor(text: bytes) -> bytes | None:
    """The bytes inside one ``PGP SIGNATURE`` armour, checked against its CRC-24, or
    ``None`` when the armour is malformed."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) < 3 or lines[0] != ARMOR_BEGIN or lines[-1] != _ARMOR_END:
        return None
    body = lines[1:-1]
    if b"" not in body:
        return None
    # Armour headers ("Version: ...") end at the first empty line; GnuPG refuses an
    # armour whose headers are not "Key: value" lines, so this does too.
    blank = body.index(b"")
    if not all(_ARMOR_HEADER.match(line) for line in body[:blank]):
        return None
    body = body[blank + 1:]
    checksum = None
    if body and body[-1].startswith(b"="):
        checksum = body.pop()[1:]
    try:
        raw = base64.b64decode(b"".join(body), validate=True)
        if checksum is not None and base64.b64decode(checksum, validate=True) \
                != _crc24(raw).to_bytes(3, "big"):
            return None
    except (binascii.Error, ValueError):
        return None
    return raw


def _packet(raw: bytes) -> tuple[int, bytes, int] | None:
    """The first packet of ``raw``: its tag, its body and where it ends; ``None`` for
    a malformed header, a partial or indeterminate length, or a cut body."""
    if len(raw) < 2 or not raw[0] & 0x80:
        return None
    if raw[0] & 0x40:  # new format
        tag = raw[0] & 0x3F
        first = raw[1]
        if first < 192:
            length, start = first, 2
        elif first < 224:
            if len(raw) < 3:
                return None
            length, start = ((first - 192) << 8) + raw[2] + 192, 3
        elif first == 255:
            if len(raw) < 6:
                return None
            length, start = struct.unpack(">I", raw[2:6])[0], 6
        else:
            return None
    else:  # old format
        tag = (raw[0] >> 2) & 0x0F
        width = {0: 1, 1: 2, 2: 4}.get(raw[0] & 0x03)
        if width is None or len(raw) < 1 + width:
            return None
        length, start = int.from_bytes(raw[1:1 + width], "big"), 1 + width
    end = start + length
    if end > len(raw):
        return None
    return tag, raw[start:end], end


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF
