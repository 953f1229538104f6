"""The terminal side of the CLI: rich tables, JSON output, error lines and progress.

Only :mod:`airgap.cli` imports this module. Core code reports through
:class:`airgap.reporter.Reporter`; :func:`make_reporter` backs it with rich on a terminal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from airgap.errors import AirgapError
from airgap.reporter import NullReporter, Reporter

if TYPE_CHECKING:
    # Only named in annotations: importing them here would load httpx and the docker
    # client into every command, tripling `airgap verify`'s start-up.
    from airgap.contents import BundleContents
    from airgap.download import Fetched
    from airgap.fetch import FetchResult
    from airgap.load import LoadResult
    from airgap.plan import Plan
    from airgap.verify import VerifyReport

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


# -- progress ------------------------------------------------------------------------------


class RichReporter:
    """One live progress display for a whole run: a total line (bytes, rate, ETA) and a
    line per item in flight; a line is printed as each item ends."""

    def __init__(self, console: Console = stderr) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=30),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        self._sizes: dict[str, int | None] = {}
        self._total = self.progress.add_task("[bold]total", total=0)

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def task_started(self, key: str, description: str, total: int | None) -> None:
        with self._lock:
            if key in self._tasks:
                return
            self._tasks[key] = self.progress.add_task(description, total=total)
            self._sizes[key] = total
            grand = self.progress.tasks[self._total].total or 0
            self.progress.update(self._total, total=grand + (total or 0))

    def task_advanced(self, key: str, nbytes: int) -> None:
        task = self._tasks.get(key)
        if task is not None:
            self.progress.advance(task, nbytes)
            self.progress.advance(self._total, nbytes)

    def task_restarted(self, key: str, completed: int) -> None:
        task = self._tasks.get(key)
        if task is not None:
            done = self.progress.tasks[task].completed
            self.progress.update(task, completed=completed)
            self.progress.advance(self._total, completed - done)

    def task_finished(self, key: str, outcome: str) -> None:
        with self._lock:
            task = self._tasks.pop(key, None)
            size = self._sizes.pop(key, None)
        if task is None:
            return
        description = self.progress.tasks[task].description
        self.progress.remove_task(task)
        style = {"done": "green", "kept": "dim", "rejected": "red", "failed": "red"}
        mark = {"done": "✓", "kept": "=", "rejected": "✗", "failed": "✗"}.get(outcome, "·")
        amount = f"  {_human(size)}" if size else ""
        self.console.print(Text(f"{mark} {outcome:<8} {description}{amount}",
                                style=style.get(outcome, "")))

    def info(self, message: str) -> None:
        self.console.print(message, highlight=False)

    def warning(self, message: str) -> None:
        self.console.print(Text("warning: ", style="bold yellow") + Text(message))


class LineReporter(NullReporter):
    """Plain lines on stderr for long-running services: information and warnings."""

    def info(self, message: str) -> None:
        stderr.print(message, highlight=False)

    def warning(self, message: str) -> None:
        print_warning(message)


def access_logger() -> logging.Logger:
    """The access log of ``airgap serve``: one timestamped line per request, on stderr."""
    logger = logging.getLogger("airgap.serve.access")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class WarningReporter(NullReporter):
    """For pipes and logs: no progress, but warnings still reach stderr."""

    def warning(self, message: str) -> None:
        print_warning(message)


@contextlib.contextmanager
def make_reporter(quiet: bool) -> Iterator[Reporter]:
    """Rich progress on a terminal; warnings only when piped or with ``--quiet`` (which
    hides progress, never a warning such as --skip-verify's)."""
    if stderr.is_terminal and not quiet:
        with RichReporter() as reporter:
            yield reporter
    else:
        yield WarningReporter()


def _human(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def render_fetch(result: FetchResult) -> None:
    """The summary table at the end of a fetch."""
    table = Table(title=f"Bundle {result.path}", title_justify="left")
    for column in ("Part", "Items", "Size", "Fetched now", "Kept"):
        table.add_column(column, justify="right" if column != "Part" else "left")

    def row(name: str, fetched: list[Fetched], count: int) -> None:
        new = sum(f.digests.size for f in fetched if not f.reused)
        kept = sum(f.digests.size for f in fetched if f.reused)
        table.add_row(name, str(count), _human(new + kept), _human(new), _human(kept))

    image = result.image
    row(f"image ({', '.join(p.platform for p in image.platforms)})", list(image.files),
        len(image.files))
    row("artifacts", [f for a in result.artifacts for f in (a.file, a.checksum, a.signature)],
        len(result.artifacts))
    row("packages", [f for p in result.packages for f in (p.file, p.signature)],
        len(result.packages))
    stdout.print(table)
    stdout.print(f"{len(result.items)} files, {_human(result.total_size)}, listed in "
                 f"{result.path / 'SHA512SUMS'}" + (" (signed)" if result.signed else ""))
    for path in result.removed:
        stdout.print(Text(f"removed {path} (no longer in the manifest)", style="dim"))


def render_verify(report: VerifyReport) -> None:
    """Every problem found, or a line saying the bundle is intact."""
    for warning in report.warnings:
        print_warning(warning)
    summary = (f"{report.files} files ({_human(report.size)}) re-hashed, "
               f"{report.signatures} signatures re-checked, operator signature: "
               f"{report.operator_signature}")
    if report.ok:
        stdout.print(Text("intact: ", style="bold green") + Text(f"{report.bundle}: {summary}"))
        return
    table = Table(title=f"{len(report.problems)} problem(s) in {report.bundle}",
                  title_justify="left")
    for column in ("File", "Problem", "Detail"):
        table.add_column(column, overflow="fold")
    for problem in report.problems:
        table.add_row(problem.path, problem.kind, problem.message)
    stdout.print(table)
    stdout.print(summary)


def render_contents(contents: BundleContents) -> None:
    """What a bundle holds."""
    image = contents.image
    state = "complete" if contents.complete else "INCOMPLETE (no SHA512SUMS)"
    signed = "signed by its operator (SHA512SUMS.asc)" if contents.signed else "no operator " \
        "signature"
    stdout.print(_facts([
        ("bundle", f"{contents.path} ({state}, {signed})"),
        ("made", f"{contents.created} by airgap {contents.tool_version}"),
        ("stack", contents.stack_version),
        ("image", f"{image.get('reference')} ({_human(image.get('size'))})"),
        *[(f"  {platform}", str(digest)) for platform, digest in image["platforms"].items()],
        ("size", f"{contents.files} files, {_human(contents.size)}"),
        ("keys", "; ".join(f"{k['fingerprint'][-16:]} {(k.get('uids') or ['?'])[0]}"
                           for k in contents.keys)),
    ]))
    if contents.artifacts:
        table = Table(title="Artifacts", title_justify="left")
        for column in ("Product", "Platform", "Format", "Size"):
            table.add_column(column, justify="right" if column == "Size" else "left")
        for product, entries in sorted(contents.artifacts.items()):
            for entry in sorted(entries, key=lambda e: (str(e["platform"]), str(e["format"]))):
                table.add_row(product, str(entry["platform"]), str(entry["format"]),
                              _human(entry["size"]))
        stdout.print(table)
    if contents.packages:
        table = Table(title="Integration packages", title_justify="left")
        for column in ("Package", "Version", "Size"):
            table.add_column(column, justify="right" if column == "Size" else "left")
        for package in contents.packages:
            table.add_row(str(package["name"]), str(package["version"]),
                          _human(package["size"]))
        stdout.print(table)


def render_load(result: LoadResult) -> None:
    """What ``airgap load`` did, one line per step, with what to put where."""
    rows: list[tuple[str, str]] = []
    if result.verification is not None:
        rows.append(("verified", f"{result.verification.files} files, "
                                 f"{result.verification.signatures} signatures"))
    else:
        rows.append(("verified", "NO (--skip-verify)"))
    if result.loaded:
        rows.append(("docker", f"{result.loaded.reference} ({result.loaded.platform}) as "
                               f"{result.loaded.image_id[:19]}"))
    if result.pushed:
        pushed = result.pushed
        rows.append(("pushed", f"{pushed.reference}@{pushed.digest} ({pushed.uploaded} blobs "
                               f"sent, {pushed.skipped} already there)"))
        rows.append(("  use", f"{pushed.reference} (Kibana's registry image, or the "
                              "ECK packageRegistry image)"))
    if result.running:
        rows.append(("running", f"container {result.running.name} at {result.running.url}"))
        rows.append(("  use", f"xpack.fleet.registryUrl: {result.running.url} (from Kibana's "
                              "host, use this host's name)"))
    if result.artifacts:
        a = result.artifacts
        rows.append(("artifacts", f"{a.directory}: {a.linked} linked, {a.copied} copied, "
                                  f"{a.unchanged} already there, {len(a.replaced)} replaced"))
        rows.append(("  serve", f"airgap serve {a.directory} --bind 0.0.0.0"))
    if result.config:
        rows.append(("settings", f"{result.config.directory}: {', '.join(result.config.files)}"
                                 " (see its README.md)"))
    stdout.print(_facts(rows))
