"""``airgap serve``'s server in a thread of its own, for tests that talk to it; or the
command itself in a process of its own, as a person runs it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

from airgap.load.serve import (
    URL_PREFIX,
    ServeSettings,
    Serving,
    base_url,
    start_server,
    stop_server,
)
from airgap.reporter import Reporter
from tests.peers.net import free_port, port_open, wait_until

REPO = Path(__file__).resolve().parent.parent.parent


class BackgroundArtifactServer:
    """The same server in a thread with its own event loop, for tests and other code:
    ``with BackgroundArtifactServer(settings) as server: ... server.url ...``."""

    def __init__(self, settings: ServeSettings, access_log: logging.Logger | None = None,
                 reporter: Reporter | None = None) -> None:
        self.settings = settings
        self.access_log = access_log
        self.reporter = reporter
        self.port = settings.port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="airgap-serve")
        self._serving: Serving | None = None

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return base_url(self.settings, self.port)

    @property
    def source_uri(self) -> str:
        """The ``agent.download.sourceURI`` to configure (ends with ``/downloads/``)."""
        return self.url + URL_PREFIX

    def start(self) -> BackgroundArtifactServer:
        """Start listening; return once the port accepts connections."""
        self._thread.start()
        try:
            future = asyncio.run_coroutine_threadsafe(
                start_server(self.settings, self.access_log, shutdown_timeout=1,
                             reporter=self.reporter), self._loop)
            self._serving = future.result(timeout=30)
            self.port = self._serving.port
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop listening, cancel the requests still running, end the thread."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):  # the loop is stopped whatever cleanup did
                asyncio.run_coroutine_threadsafe(stop_server(self._serving),
                                                 self._loop).result(timeout=15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> BackgroundArtifactServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(tree: Path, *options: str, files: int | None = None
          ) -> tuple[subprocess.Popen[str], int]:
    """``airgap serve TREE`` in a process of its own on a free port, optionally with an
    open-file limit of ``files``; returns once it answers."""
    port = free_port()

    def limit() -> None:
        if files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "airgap", "serve", str(tree), "--port",
                                str(port), *options], cwd=REPO, text=True, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=limit)
    try:
        wait_until(lambda: port_open(port), 30, "airgap serve listening")
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return process, port


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, then what the server wrote to stderr."""
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode in (0, 143), err
    return err
