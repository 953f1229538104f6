"""What the kernel says of a connection's sending: the bytes its peer acknowledged and
those still queued, so that ``airgap serve`` can tell a client that stopped reading from
one that reads slowly, whether aiohttp writes through its transport or ``sendfile``."""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios

# struct tcp_info (linux/tcp.h): tcpi_bytes_acked, a u64, since Linux 4.1.
_TCPI_BYTES_ACKED = 120
_TCP_INFO_SIZE = 256


def sending(transport: asyncio.BaseTransport) -> tuple[int, int] | None:
    """The bytes the peer acknowledged and those still in the kernel's send queue; None
    where the kernel does not tell (then no send timeout applies)."""
    sock = transport.get_extra_info("socket")
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4)
    except OSError:
        return None
    if len(info) < _TCPI_BYTES_ACKED + 8:
        return None
    return (struct.unpack_from("=Q", info, _TCPI_BYTES_ACKED)[0],
            struct.unpack("=i", queued)[0])


def buffered(transport: asyncio.BaseTransport) -> int:
    """What the transport holds that the kernel has not taken yet (TLS records, writes)."""
    size = getattr(transport, "get_write_buffer_size", None)
    return int(size()) if callable(size) else 0
