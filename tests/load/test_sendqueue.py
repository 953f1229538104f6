"""What the kernel says of a real loopback connection's sending."""

from __future__ import annotations

import asyncio
import socket
import time

from airgap.load.sendqueue import buffered, sending


def test_acknowledged_and_queued_bytes_follow_what_the_peer_reads() -> None:
    async def check() -> None:
        with socket.socket() as listening:
            listening.bind(("127.0.0.1", 0))
            listening.listen()
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect(listening.getsockname())
            accepted, _ = listening.accept()
            transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
                asyncio.Protocol, accepted)
            try:
                assert sending(transport) == (0, 0) and buffered(transport) == 0
                transport.write(b"x" * (8 << 20))  # far more than the client takes
                await asyncio.sleep(0.3)
                first = sending(transport)
                assert first is not None
                acked, queued = first
                assert 0 < acked < 8 << 20 and queued > 0
                assert buffered(transport) > 0
                await asyncio.sleep(0.3)
                assert sending(transport) == first  # the client reads nothing: no progress
                deadline = time.monotonic() + 10
                while (now := sending(transport)) == first:
                    client.recv(1 << 20)
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                assert now is not None and now[0] > acked
            finally:
                transport.abort()
                client.close()

    asyncio.run(check())
