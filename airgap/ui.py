"""The terminal side of the CLI: rich tables, JSON output, error lines and progress.

Only :mod:`airgap.cli` imports this module. Core code reports through
:class:`airgap.reporter.Reporter`; :func:`make_reporter` backs it with rich on a terminal.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from airgap.errors import AirgapError
from airgap.plan import Plan

stdout = Console(highlight=False, soft_wrap=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout, uncoloured so it pipes cleanly."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def print_error(exc: AirgapError) -> None:
    """Show an error on stderr: the message, then one indented line per detail."""
    stderr.print(Text("error: ", style="bold red") + Text(exc.message))
    for line in exc.details:
        stderr.print(Text(f"  {line}"))


def print_warning(message: str) -> None:
    """Show a warning on stderr."""
    stderr.print(Text("warning: ", style="bold yellow") + Text(message))


def render_plan(plan: Plan) -> None:
    """Show what a fetch of the plan's manifest would get, as tables."""
    image = plan.image
    stdout.print(Text("Package registry image", style="italic"))
    stdout.print(_facts([
        ("reference", str(image.reference)),
        ("platforms", ", ".join(image.platforms)),
        ("from", f"{image.registry_url}/v2/{image.reference.repository}"),
        ("why", f"← {image.reason}"),
    ]))

    if plan.artifacts:
        table = Table(
            title=f"Artifacts from {plan.manifest.sources.artifacts} "
                  "(each with its .sha512 and .asc)",
            title_justify="left",
        )
        for column in ("Product", "File", "Why"):
            table.add_column(column, overflow="fold")
        previous = None
        for item in plan.artifacts:
            first = item.product != previous
            previous = item.product
            table.add_row(item.product if first else "", item.path,
                          "← " + "; ".join(item.reasons) if first else "")
        stdout.print(table)

    if plan.packages:
        epr = plan.manifest.sources.epr
        table = Table(title=f"Integration packages from {epr} (newest compatible, with .sig)",
                      title_justify="left")
        for column in ("Package", "Resolved with", "Why"):
            table.add_column(column, overflow="fold")
        for package in plan.packages:
            table.add_row(package.name, package.search_url.removeprefix(epr),
                          f"← {package.reason}")
        stdout.print(table)

    for note in plan.notes:
        stdout.print(Text("note: ", style="cyan") + Text(note))
    files = len(plan.artifacts) * 3
    stdout.print(
        f"[bold]{image.reference}[/] for {len(image.platforms)} platform(s), "
        f"{len(plan.artifacts)} artifact(s) ({files} files with checksums and signatures), "
        f"{len(plan.packages)} package(s) to resolve."
    )


def _facts(rows: list[tuple[str, str]]) -> Table:
    """A two-column key/value grid, for one item's details."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(f"  {key}", value)
    return grid
