"""What a command shows when it is done: tables at a terminal, lines in a pipe, or JSON.

At a terminal, reports are rich tables. Into a pipe or a file (``stdout`` not a
terminal) every row is one line, never wrapped, with whole paths, so that
``airgap verify B | grep -F elastic-agent-9.0.0-linux-x86_64.tar.gz`` finds it. With
``--json`` a command prints one envelope (:func:`envelope`) and nothing else on stdout.
What core code says about its settings (:func:`airgap.errors.setting`) is shown here
with the options that set them. Only :mod:`airgap.cli` imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airgap.bundle.layout import TOOLS
from airgap.cli.options import flags
from airgap.cli.output import (
    facts,
    line,
    print_warning,
    table,
    terminal,
)
from airgap.errors import setting
from airgap.units import human_size

if TYPE_CHECKING:
    # Only named in annotations: importing them here would load httpx and the docker
    # client into every command, tripling `airgap verify`'s start-up.
    from airgap.bundle.inspect import BundleContents
    from airgap.bundle.verify import VerifyReport
    from airgap.carry.check import VolumeReport
    from airgap.carry.join import JoinResult
    from airgap.carry.merge import MergeResult
    from airgap.carry.split import SplitResult
    from airgap.fetch.preflight import SourceCheck
    from airgap.fetch.run import FetchResult
    from airgap.load.export import ExportResult
    from airgap.load.run import LoadResult
    from airgap.manifest.plan import Plan

def render_plan(plan: Plan, check: SourceCheck | None = None) -> None:
    """What a fetch of the plan's manifest would get, and why (with sizes once checked)."""
    image = plan.image
    sizes = check.sizes() if check is not None else {}
    tailored = plan.tailored
    names = [("image", f"{tailored.reference} (tailored: composed by airgap)"),
             ("base", str(image.reference)),
             ("packages", f"{len(plan.packages)}, each with its .sig, in "
                          f"{tailored.package_path}")] if tailored else \
        [("image", str(image.reference))]
    composed = [("composed", f"about {human_size(check.composed)} more")] \
        if check is not None and check.composed else []
    facts([*names, ("platforms", ", ".join(image.platforms)),
            ("from", f"{image.registry_url}/v2/{image.reference.repository}"),
            ("why", f"← {image.reason}"),
            *([("size", human_size(check.image.size))] if check is not None else []),
            *composed])
    _render_plan_extras(plan)
    if plan.artifacts:
        previous = None
        rows = []
        for item in plan.artifacts:
            first = item.product != previous or not terminal()
            previous = item.product
            rows.append([item.product if first else "", item.bundle_path,
                         *([human_size(sizes.get(item.bundle_path))] if check else []),
                         "← " + "; ".join(item.reasons) if first else ""])
        table(f"Artifacts from {plan.manifest.sources.artifacts} (each with its .sha512 "
               "and .asc)", ["Product", "File", *(["Size"] if check else []), "Why"], rows,
               "artifact", right=["Size"])
    if plan.packages:
        epr = plan.manifest.sources.epr
        if check is None:
            rows = [[p.label, p.search_url.removeprefix(epr), f"← {p.reason}"]
                    for p in plan.packages]
            columns = ["Package", "Resolved with", "Why"]
        else:
            rows = [[p.name, p.version, human_size(sizes.get(p.bundle_path)), f"← {reason}"]
                    for p, reason in check.packages]
            columns = ["Package", "Version", "Size", "Why"]
        which = "every compatible version" if plan.manifest.registry.all_versions else \
            "newest compatible"
        table(f"Integration packages from {epr} ({which}, with .sig)", columns,
               rows, "package", right=["Size"])
    for note in plan.notes:
        line(f"note: {note}")
    total = f"; {human_size(check.total)} in all" + (
        f" ({check.unknown} of unknown size)" if check.unknown else "") if check else ""
    more = f" and {len(plan.images)} more image(s)" if plan.images else ""
    defend = f", Elastic Defend's artifacts for {len(plan.defend)} Endpoint version(s)" \
        if plan.defend else ""
    line(f"{tailored.reference if tailored else image.reference} for "
         f"{len(image.platforms)} platform(s){more}, "
         f"{len(plan.artifacts)} artifact(s) ({len(plan.artifacts) * 3} files with checksums "
         f"and signatures), {len(plan.packages)} package(s) to resolve{defend}{total}.")


def _render_plan_extras(plan: Plan) -> None:
    """The images besides the registry's, and Elastic Defend's manifests."""
    for item in plan.images:
        facts([("image", str(item.reference)), ("platforms", ", ".join(item.platforms)),
                ("from", f"{item.registry_url}/v2/{item.reference.repository}"),
                ("why", f"← {item.reason}")])
    if plan.defend:
        table(f"Elastic Defend's artifacts from {plan.manifest.sources.security} (each "
               "manifest, then what it lists)", ["Endpoint", "Manifest", "Why"],
               [[d.endpoint_version, d.path, f"← {d.reason}"] for d in plan.defend], "defend")


def render_fetch(result: FetchResult) -> None:
    """What the fetch did, and where the bundle is: one row per part, each file counted
    once (in the first part that brings it), so that the rows add up to the last line."""
    rows = []
    seen: set[Path] = set()
    counted = [0, 0]

    def row(name: str, files: Sequence[Any]) -> None:
        files = [f for f in {f.dest: f for f in files}.values() if f.dest not in seen]
        seen.update(f.dest for f in files)
        new = sum(f.fetched_now for f in files)
        resumed = sum(f.resumed for f in files if not f.reused)
        kept = sum(f.digests.size for f in files if f.reused)
        size = sum(f.digests.size for f in files)
        counted[0] += len(files)
        counted[1] += size
        rows.append([name, str(len(files)), human_size(size), human_size(new),
                     human_size(resumed), human_size(kept)])

    image = result.image
    what = "tailored image" if image.tailored else "image"
    row(f"{what} ({', '.join(p.platform for p in image.platforms)})", image.files)
    row("artifacts", [f for a in result.artifacts for f in (a.file, a.checksum, a.signature)])
    row("packages", [f for p in result.packages for f in (p.file, p.signature)])
    extras = result.extras
    for more in extras.images:
        row(f"image {more.reference.repository}", more.files)
    if extras.defend:
        row("Elastic Defend (" + ", ".join(f"{d.item.endpoint_version}: "
                                           f"{d.document.manifest_version}"
                                           for d in extras.defend) + ")",
            [f for d in extras.defend for f in (d.manifest, *(a for _, a in d.artifacts))])
    if extras.tools:
        row("airgap wheelhouse (tools/)", extras.tools)
    # What the fetch wrote itself: the images' index, the keys, bundle.json, SHA512SUMS.
    rows.append(["index (bundle.json, SHA512SUMS, keys, the images' index)",
                 str(result.file_count - counted[0]),
                 human_size(result.total_size - counted[1]), "-", "-", "-"])
    table(f"Bundle {result.path}", ["Part", "Files", "Size", "Fetched now", "Resumed", "Kept"],
           rows, "part", right=["Files", "Size", "Fetched now", "Resumed", "Kept"])
    state = "unchanged: it already held exactly this" if result.unchanged else \
        f"listed in {result.path / 'SHA512SUMS'}" + (" (signed)" if result.signed else "")
    if result.delta is None:
        line(f"done: {result.file_count} files, {human_size(result.total_size)}, {state}")
    else:
        d = result.delta
        line(f"done: a delta of the bundle {_identity(d.base)}: it carries {d.carried_files} "
             f"of {d.files} files, {human_size(d.carried_size)} of {human_size(d.size)}, "
             f"{state}; merged, it makes the bundle {_identity(d.target)}")
    for path in result.removed:
        # The wheelhouse is carried because of an option, not because of the manifest.
        why = f"not asked for: {flags(setting('with_tool'))}" if path.startswith(f"{TOOLS}/") else \
            "no longer in the manifest"
        line(f"removed {path} ({why})")


def render_verify(report: VerifyReport) -> None:
    """Every problem found, or a line saying the bundle is intact."""
    for warning in report.warnings:
        print_warning(warning)
    not_vouched = (f" ({report.not_vouched} by a signer not vouched for: give --trust-key "
                   "to check)") if report.not_vouched else ""
    hashed = "re-hashed" if not report.hashed_as_written else (
        f"checked ({report.hashed_as_written} hashed as they were written, "
        f"{report.files - report.hashed_as_written} re-hashed)")
    summary = (f"{report.files} files ({human_size(report.size)}) {hashed}, "
               f"{report.signatures + report.not_vouched} signatures re-checked{not_vouched}, "
               f"operator signature: {report.operator_signature}")
    if report.layer_packages:
        summary += (f", the tailored registry's layer read member by member against its "
                    f"{report.layer_packages} verified packages")
    if report.delta_of is not None:
        summary += (f"; a delta of the bundle {_identity(report.delta_of)}: merge it with "
                    f"airgap merge BASE {report.bundle} -o NEW")
    if report.ok:
        line(f"intact: {report.bundle}: {summary}")
        return
    table(f"{len(report.problems)} problem(s) in {report.bundle}",
           ["File", "Problem", "Detail"],
           [[p.path, p.kind, p.message] for p in report.problems], "problem")
    line(f"failed: {summary}")


def render_contents(contents: BundleContents) -> None:
    """What a bundle holds."""
    image = contents.image
    state = "complete" if contents.complete else "INCOMPLETE (no SHA512SUMS)"
    signed = "signed by its operator (SHA512SUMS.asc)" if contents.signed else \
        "no operator signature"
    said = [("bundle", f"{contents.path} ({state}, {signed})")]
    if contents.identity is not None:
        said.append(("identity", _identity(contents.identity)))
    if contents.delta_of is not None and contents.carried is not None:
        files, size = contents.carried
        said.append(("delta", f"of the bundle {_identity(contents.delta_of)}: carries "
                               f"{files} files ({human_size(size)}) of those below"))
    facts([
        *said,
        ("made", f"{contents.created} by airgap {contents.tool_version}"),
        ("stack", contents.stack_version),
        ("image", f"{image.get('reference')} ({human_size(image.get('size'))})"),
        *([("  tailored", f"{image['tailored']['base']} + "
                          f"{len(image['tailored']['packages'])} packages (layer "
                          f"{image['tailored']['layer'][:19]})")]
          if image.get("tailored") else []),
        *[(f"  {platform}", str(digest)) for platform, digest in image["platforms"].items()],
        *[("image", f"{more['reference']} ({', '.join(more['platforms'])})")
          for more in contents.images],
        *[("defend", f"Endpoint {d['endpoint_version']}: manifest_version "
                     f"{d['manifest_version']}, {d['artifacts']} artifacts, fetched "
                     f"{d['fetched']}") for d in contents.defend],
        *[("tools", f"tools/{name} (install.sh installs airgap from it)")
          for name in contents.tools],
        ("size", f"{contents.files} files, {human_size(contents.size)}"),
        ("keys", "; ".join(f"{k['fingerprint'][-16:]} {(k.get('uids') or ['?'])[0]}"
                           for k in contents.keys)),
    ])
    if contents.artifacts:
        rows = [[product, str(e["platform"]), str(e["format"]), human_size(e["size"]),
                 str(e["path"]) if not terminal() else ""]
                for product, entries in sorted(contents.artifacts.items())
                for e in sorted(entries, key=lambda e: (str(e["platform"]), str(e["format"])))]
        table("Artifacts", ["Product", "Platform", "Format", "Size", ""], rows, "artifact",
               right=["Size"])
    if contents.packages:
        rows = [[str(p["name"]), str(p["version"]), human_size(p["size"]),
                 str(p["path"]) if not terminal() else ""] for p in contents.packages]
        table("Integration packages", ["Package", "Version", "Size", ""], rows, "package",
               right=["Size"])
    for warning in contents.warnings:
        print_warning(warning)


def render_load(result: LoadResult) -> None:
    """What ``airgap load`` did, one line per step, with what to put where."""
    rows: list[tuple[str, str]] = []
    if result.verification is not None:
        rows.append(("verified", f"{result.verification.files} files, "
                                 f"{result.verification.signatures} signatures"))
    else:
        rows.append(("verified", "NO (--skip-verify)"))
    for loaded in (result.loaded, *result.more_loaded):
        if loaded is not None:
            rows.append(("docker", f"{loaded.reference} ({loaded.platform}) as "
                                   f"{loaded.image_id[:19]}"))
    for number, pushed in enumerate((result.pushed, *result.pushed_more)):
        if pushed is not None:
            rows.append(("pushed", f"{pushed.reference}@{pushed.digest} ({pushed.uploaded} "
                                   f"blobs sent, {pushed.skipped} already there)"))
            rows.append(("  use", f"{pushed.reference}" + (
                " (Kibana's registry image, or the ECK packageRegistry image)"
                if number == 0 else "")))
    if result.running:
        running = result.running
        where = "" if running.reachable else \
            " (reachable only inside the engine's network, not from this host)"
        rows.append(("running", f"container {running.name} at {running.url}{where}"))
        old = running.replaced
        if old is not None:
            rows.append(("  replaced", f"container {old.name} ({old.container_id[:12]}): " + (
                "removed once the new one was healthy" if old.removed else
                f"left as {old.left_as}: remove it with `docker rm -f {old.left_as}`")))
        rows.append(("  use", f"xpack.fleet.registryUrl: {running.url} (from Kibana's "
                              "host, use this host's name)"))
    if result.artifacts:
        a = result.artifacts
        copies = f"{a.copied} copied" + (f" ({a.cloned} as reflinks)" if a.cloned else "")
        links = f", {a.linked} hard-linked" if a.linked else ""
        rows.append(("artifacts", f"{a.directory}: {copies}{links}, "
                                  f"{a.unchanged} already there, {len(a.replaced)} replaced"))
        rows.append(("  serve", f"airgap serve {a.directory} --bind 0.0.0.0"))
    if result.defend:
        d = result.defend
        rows.append(("defend", f"{d.directory}: {d.added} files added, {d.unchanged} already "
                               f"there; Endpoint {', '.join(d.manifests)}"))
    if result.config:
        rows.append(("settings", f"{result.config.directory}: {', '.join(result.config.files)}"
                                 " (see its README.md)"))
    facts(rows)


def render_export(result: ExportResult) -> None:
    """The archive ``airgap export-image`` wrote, and how to load it."""
    line(f"wrote {result.path}: {result.reference} ({result.platform}), "
         f"{result.size} bytes; load it with: docker load -i {result.path}")


def _identity(identity: str) -> str:
    """A bundle's identity as people compare it."""
    return f"sha512:{identity[:32]}"


def render_volume(report: VolumeReport) -> None:
    """One volume: intact, or each damaged piece."""
    for warning in report.warnings:
        print_warning(warning)
    what = (f"volume {report.number} of {report.volumes} of the "
            f"{'delta' if report.delta_of else 'bundle'} {_identity(report.bundle)}")
    summary = (f"{what}: {report.pieces} piece(s) ({human_size(report.size)}) re-hashed, "
               f"index signature: {report.signature}")
    if report.ok:
        line(f"intact: {report.volume}: {summary}")
        return
    table(f"{len(report.problems)} problem(s) in {report.volume}",
           ["Piece", "Problem", "Detail"],
           [[p.path, p.kind, p.message] for p in report.problems], "problem")
    line(f"failed: {summary}")


def render_merge(result: MergeResult) -> None:
    """What ``airgap merge`` made, and how."""
    words = {"reflink": "cloned", "link": "hard-linked", "copy": "copied",
             "kept": "already in place (made by an earlier run of this merge)"}
    facts([
        ("merged", f"{result.path}: the bundle {_identity(result.target)}"),
        ("from", f"the base {_identity(result.base)} and {result.carried} files of the delta"),
        ("files", ", ".join(f"{count} {words.get(way, way)}" for way, count in
                            sorted(result.placed.items()))),
    ])
    render_verify(result.report)


def render_split(result: SplitResult) -> None:
    """The volumes written, one line each."""
    table(f"{len(result.volumes)} volume(s) of the bundle {_identity(result.bundle)}",
           ["Volume", "Holds"], [[str(folder), human_size(size)] for folder, size in
                                 zip(result.volumes, result.sizes, strict=True)],
           "volume", right=["Holds"])
    line(f"done: {result.files} files ({human_size(result.size)}) in {result.pieces} pieces"
         + ("; the index is signed" if result.signed else
            "; the index is NOT signed (give --sign-with)"))
    line("check each volume where it arrives: airgap verify VOLUME --trust-key KEY")


def render_join(result: JoinResult) -> None:
    """Where a join stands."""
    added = ", ".join(map(str, result.added)) or "none"
    skipped = f" ({', '.join(map(str, result.skipped))} joined already)" if result.skipped \
        else ""
    if result.report is None:
        missing = ", ".join(map(str, result.missing))
        line(f"joined volume(s) {added}{skipped} of {result.volumes} into {result.bundle}; "
             f"waiting for volume(s) {missing}")
        return
    line(f"joined volume(s) {added}{skipped}: all {result.volumes} are in; {result.bundle} "
         f"is the bundle {_identity(result.identity)}")
    render_verify(result.report)
