"""The command line: the only place that parses options, prints, and turns errors into
exit codes. ``airgap = airgap.cli:run``.
"""

from airgap.cli.main import main, run

__all__ = ["main", "run"]
