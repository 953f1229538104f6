"""``airgap serve``'s server in a thread of its own, for tests that talk to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from airgap.load.serve import (
    URL_PREFIX,
    ServeSettings,
    Serving,
    base_url,
    start_server,
    stop_server,
)
from airgap.reporter import Reporter


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
