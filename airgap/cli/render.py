"""The terminal side of the CLI: rich tables, JSON output, error and warning lines.

Only :mod:`airgap.cli` imports this module. What core code says about its settings
(:func:`airgap.errors.setting`) is shown here with the options that set them.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from airgap.cli.options import flags
from airgap.errors import AirgapError

if TYPE_CHECKING:
    # Only named in annotations: importing them here would load httpx and the docker
    # client into every command, tripling `airgap verify`'s start-up.
    from airgap.bundle.inspect import BundleContents
    from airgap.bundle.verify import VerifyReport
    from airgap.fetch.run import FetchResult
    from airgap.load.run import LoadResult
    from airgap.manifest.plan import Plan
    from airgap.net.download import Fetched

stdout = Console(highlight=False, soft_wrap=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def _with_flags(data: Any) -> Any:
    """``data`` with the settings its strings name shown as options, all the way down."""
    if isinstance(data, str):
        return flags(data)
    if isinstance(data, dict):
        return {key: _with_flags(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_with_flags(value) for value in data]
    return data


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout, uncoloured so it pipes cleanly."""
    sys.stdout.write(json.dumps(_with_flags(data), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def print_error(exc: AirgapError) -> None:
    """Show an error on stderr: the message, then one indented line per detail."""
    stderr.print(Text("error: ", style="bold red") + Text(flags(exc.message)))
    for line in exc.details:
        stderr.print(Text(f"  {flags(line)}"))


def print_warning(message: str) -> None:
    """Show a warning on stderr."""
    stderr.print(Text("warning: ", style="bold yellow") + Text(flags(message)))


def render_plan(plan: Plan) -> None:
    """Show what a fetch of the plan's manifest would get, as tables."""
    image = plan.image
    stdout.print(Text("Package registry image", style="italic"))
    tailored = [("reference", f"{plan.tailored.reference} (tailored: composed by airgap)"),
                ("base", str(image.reference)),
                ("packages", f"{len(plan.packages)}, each with its .sig, in "
                             f"{plan.tailored.package_path}")] if plan.tailored else \
        [("reference", str(image.reference))]
    stdout.print(_facts([
        *tailored,
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
            table.add_row(package.label, package.search_url.removeprefix(epr),
                          f"← {package.reason}")
        stdout.print(table)

    for note in plan.notes:
        stdout.print(Text("note: ", style="cyan") + Text(note))
    files = len(plan.artifacts) * 3
    stdout.print(
        f"[bold]{plan.tailored.reference if plan.tailored else image.reference}[/] for "
        f"{len(image.platforms)} platform(s), "
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


def human_size(size: int | None) -> str:
    """A size as people read it: ``4.9 MB``."""
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
        table.add_row(name, str(count), human_size(new + kept), human_size(new), human_size(kept))

    image = result.image
    row(f"image ({', '.join(p.platform for p in image.platforms)})", list(image.files),
        len(image.files))
    row("artifacts", [f for a in result.artifacts for f in (a.file, a.checksum, a.signature)],
        len(result.artifacts))
    row("packages", [f for p in result.packages for f in (p.file, p.signature)],
        len(result.packages))
    stdout.print(table)
    stdout.print(f"{len(result.items)} files, {human_size(result.total_size)}, listed in "
                 f"{result.path / 'SHA512SUMS'}" + (" (signed)" if result.signed else ""))
    for path in result.removed:
        stdout.print(Text(f"removed {path} (no longer in the manifest)", style="dim"))


def render_verify(report: VerifyReport) -> None:
    """Every problem found, or a line saying the bundle is intact."""
    for warning in report.warnings:
        print_warning(warning)
    summary = (f"{report.files} files ({human_size(report.size)}) re-hashed, "
               f"{report.signatures} signatures re-checked, operator signature: "
               f"{flags(report.operator_signature)}")
    if report.ok:
        stdout.print(Text("intact: ", style="bold green") + Text(f"{report.bundle}: {summary}"))
        return
    table = Table(title=f"{len(report.problems)} problem(s) in {report.bundle}",
                  title_justify="left")
    for column in ("File", "Problem", "Detail"):
        table.add_column(column, overflow="fold")
    for problem in report.problems:
        table.add_row(problem.path, problem.kind, flags(problem.message))
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
        ("image", f"{image.get('reference')} ({human_size(image.get('size'))})"),
        *([("  tailored", f"{image['tailored']['base']} + "
                          f"{len(image['tailored']['packages'])} packages (layer "
                          f"{image['tailored']['layer'][:19]})")]
          if image.get("tailored") else []),
        *[(f"  {platform}", str(digest)) for platform, digest in image["platforms"].items()],
        ("size", f"{contents.files} files, {human_size(contents.size)}"),
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
                              human_size(entry["size"]))
        stdout.print(table)
    if contents.packages:
        table = Table(title="Integration packages", title_justify="left")
        for column in ("Package", "Version", "Size"):
            table.add_column(column, justify="right" if column == "Size" else "left")
        for package in contents.packages:
            table.add_row(str(package["name"]), str(package["version"]),
                          human_size(package["size"]))
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
