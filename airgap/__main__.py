"""``python -m airgap``: the same as the ``airgap`` command."""

from __future__ import annotations

from airgap.cli import run

run()
