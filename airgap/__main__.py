"""``python -m airgap``: the same as the ``airgap`` command."""

from __future__ import annotations

import sys

from airgap.cli import main

sys.exit(main())
