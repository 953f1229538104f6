"""What one run of the program knows about itself, for :func:`airgap.cli.main.main` to
end it properly: the command, whether ``--json`` was asked, the reporter in use, and
what an interruption leaves behind."""

from __future__ import annotations

from dataclasses import dataclass, field

from airgap.cli.progress import CountingReporter


@dataclass
class Session:
    """Set by the command as it runs; read when it ends, however it ends."""

    command: str = ""
    json: bool = False
    json_printed: bool = False
    debug: bool = False
    reporter: CountingReporter | None = None
    #: What an interruption leaves, for the line it prints ("a re-run resumes ...").
    on_interrupt: str = "nothing was changed"
    warnings: list[str] = field(default_factory=list)
