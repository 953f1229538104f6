"""The commands that carry a bundle: ``merge`` a delta into its base, ``split`` a bundle
into volumes that fit the medium, ``join`` them back (``verify VOLUME`` checks one).
"""

from __future__ import annotations

from pathlib import Path

import click

from airgap.cli import options, render
from airgap.cli.group import (
    begin,
    cli,
    emit,
    interruption_says,
    json_option,
    reporting,
    show_report,
)
from airgap.cli.session import Session
from airgap.errors import ExitCode, VerificationError


def verify_volume(session: Session, volume: Path, trust_keys: tuple[Path, ...], jobs: int,
                  quiet: bool) -> None:
    """``airgap verify VOLUME``: one volume of a split bundle, checked alone."""
    from airgap.carry.check import VolumeSettings, verify_volume

    with reporting(session, quiet) as reporter:
        report = verify_volume(VolumeSettings(volume, trust_keys, jobs), reporter)
    failed = VerificationError(f"{volume} (volume {report.number} of {report.volumes}) is "
                               f"damaged: {len(report.problems)} problem(s); send it again")
    show_report(session, report, ExitCode.OK if report.ok else failed.exit_code,
                render.render_volume)
    if not report.ok:
        raise failed


@cli.command("merge", short_help="Merge DELTA into BASE, the bundle it was made from.")
@click.argument("base", type=options.BUNDLE)
@click.argument("delta", type=options.BUNDLE)
@click.option("--output", "-o", type=options.DIR, required=True,
              help="The new bundle's folder (new or empty).")
@options.trust_keys
@options.trust_signers
@click.option("--hard-link", is_flag=True,
              help="Hard-link NEW's files to BASE's and DELTA's where they cannot be cloned, "
                   "instead of copying them. No extra space, but the bundles then share "
                   "those files: a change to one changes the other.")
@options.jobs_verify
@options.quiet
@json_option
def merge_command(base: Path, delta: Path, output: Path, trust_keys: tuple[Path, ...],
                  trust_signers: tuple[Path, ...], hard_link: bool, jobs: int, quiet: bool,
                  as_json: bool) -> None:
    """Merge DELTA into BASE, the bundle it was made from, as a new complete bundle
    (verified as one); nothing is written unless DELTA names BASE and both verify."""
    from airgap.carry.merge import MergeRefused, MergeSettings, merge, what_is_left

    session = begin("merge", as_json)
    settings = MergeSettings(base=base, delta=delta, output=output, trust_keys=trust_keys,
                             trust_signers=trust_signers, hard_link=hard_link, jobs=jobs)
    try:
        with interruption_says(session, lambda: what_is_left(settings)), \
                reporting(session, quiet) as reporter:
            result = merge(settings, reporter)
    except MergeRefused as refused:
        show_report(session, refused.report, refused.exit_code, render.render_verify)
        raise
    if session.json:
        emit(session, result.to_dict(), warnings=result.report.warnings)
    else:
        render.render_merge(result)


@cli.command("split", short_help="Write BUNDLE as volumes that fit the medium.")
@click.argument("bundle", type=options.BUNDLE)
@click.option("--output", "-o", type=options.DIR, required=True,
              help="Where the volumes go: OUTPUT/001, OUTPUT/002, ... (new or empty, or an "
                   "earlier split's).")
@click.option("--size", metavar="SIZE", required=True, callback=options.size_option,
              help="What one volume holds, everything included: 4.7GB, 700MB, 25GB, ...")
@click.option("--max-file", metavar="SIZE", callback=options.size_option,
              help="The largest file the medium takes (FAT32: 4GiB-1).")
@click.option("--block", metavar="SIZE", default="4KiB", show_default=True,
              callback=options.size_option,
              help="The medium's allocation unit: every file counts in whole blocks.")
@click.option("--sign-with", metavar="KEYID",
              help="Sign the volumes' index with this OpenPGP key (from --gnupg-home).")
@click.option("--gnupg-home", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="The GnuPG home holding the --sign-with key.")
@options.jobs_verify
@options.quiet
@json_option
def split_command(bundle: Path, output: Path, size: int, max_file: int | None, block: int,
                  sign_with: str | None, gnupg_home: Path | None, jobs: int, quiet: bool,
                  as_json: bool) -> None:
    """Write BUNDLE (a bundle or a delta) as volumes that fit the medium, each holding the
    same signed index; whole files packed, larger ones cut into pieces."""
    from airgap.carry.split import SplitSettings, split, what_is_left
    from airgap.carry.volumes import Limits

    session = begin("split", as_json)
    settings = SplitSettings(bundle=bundle, output=output,
                             limits=Limits(size=size, block=block, max_file=max_file),
                             sign_with=sign_with, gnupg_home=gnupg_home, jobs=jobs)
    with interruption_says(session, lambda: what_is_left(bundle, output)), \
            reporting(session, quiet) as reporter:
        result = split(settings, reporter)
    if session.json:
        emit(session, result.to_dict())
    else:
        render.render_split(result)


@cli.command("join", short_help="Join volumes back into a bundle, in any order.")
@click.argument("volumes", type=options.BUNDLE, nargs=-1, required=True)
@click.option("--output", "-o", "bundle", type=options.DIR, required=True,
              help="The bundle's folder (new, or one a join began).")
@click.option("--partial", is_flag=True,
              help="More volumes will come: add these, and wait for the others.")
@options.trust_keys
@options.trust_signers
@options.jobs_verify
@options.quiet
@json_option
def join_command(volumes: tuple[Path, ...], bundle: Path, partial: bool,
                 trust_keys: tuple[Path, ...], trust_signers: tuple[Path, ...], jobs: int,
                 quiet: bool, as_json: bool) -> None:
    """Join VOLUME... back into a bundle: in any order, all at once or one at a time as
    they arrive; each piece is checked as it is copied, and the bundle at the end."""
    from airgap.carry.join import (
        IncompleteError,
        JoinRefused,
        JoinSettings,
        join,
        where_it_stands,
    )

    session = begin("join", as_json)
    settings = JoinSettings(volumes=volumes, bundle=bundle, trust_keys=trust_keys,
                            trust_signers=trust_signers, partial=partial, jobs=jobs)
    try:
        with interruption_says(session, lambda: where_it_stands(bundle)), \
                reporting(session, quiet) as reporter:
            result = join(settings, reporter)
    except IncompleteError as incomplete:
        if session.json:
            emit(session, incomplete.result.to_dict(), exit_code=incomplete.exit_code,
                 error=incomplete)
        raise
    except JoinRefused as refused:
        show_report(session, refused.report, refused.exit_code, render.render_verify)
        raise
    if session.json:
        emit(session, result.to_dict(),
              warnings=result.report.warnings if result.report is not None else ())
    else:
        render.render_join(result)
