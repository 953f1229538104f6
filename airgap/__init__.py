"""airgap: fetch, verify and load everything Elastic Fleet needs in an isolated network."""

from __future__ import annotations

__version__ = "0.1.0"
