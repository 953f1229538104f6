"""The ``airgap`` command group and what its commands share: the session of one run,
its reporter, the JSON envelope. The commands are in :mod:`airgap.cli.commands` (the
pipeline) and :mod:`airgap.cli.carrying` (deltas and volumes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from airgap import __version__
from airgap.cli import output, progress, reporters
from airgap.cli.session import Session
from airgap.errors import AirgapError, ExitCode

if TYPE_CHECKING:
    from airgap.bundle.verify import VerifyReport
    from airgap.carry.check import VolumeReport

    Report = TypeVar("Report", VerifyReport, VolumeReport)

EPILOG = """\b
A site, from end to end:
  airgap fetch site.yaml -o bundle/ \\
      --sign-with ops@example.org --gnupg-home ~/ops-gnupg
  airgap verify bundle/ --trust-key ops-public.asc
  airgap load bundle/ --trust-key ops-public.asc --docker --run \\
      --artifacts /srv/artifacts --config settings/ \\
      --registry-url https://epr.corp:8080 \\
      --artifacts-url https://files.corp/downloads/

\b
Again, as the site changes; and on media with limits:
  airgap fetch site.yaml -o delta/ --since last-bundle/   (what it lacks)
  airgap merge last-bundle/ delta/ -o new-bundle/
  airgap split bundle/ -o parts/ --size 4.7GB
  airgap join parts/* -o bundle/

\b
Exit codes: 0 ok, 1 failed, 2 usage or manifest error, 3 verification failed,
129 hung up (SIGHUP), 130 interrupted (Ctrl-C, SIGINT),
141 output closed (| head), 143 terminated (SIGTERM).

\b
Environment:
  AIRGAP_REGISTRY     the one registry host (host:port) the two below are for
  AIRGAP_REGISTRY_USERNAME, AIRGAP_REGISTRY_PASSWORD  its credentials
  DOCKER_CONFIG       where `docker login` keeps credentials (~/.docker)
  DOCKER_HOST         the Docker engine `load --docker` and `--run` use
  AIRGAP_SIGN_PASSPHRASE  passphrase of the --sign-with key, for scripts
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY  as curl and docker read them
  AIRGAP_DEBUG=1      the whole trace of an unexpected error (also --debug)

\b
Shell completion (bash; zsh_source, fish_source for the others):
  eval "$(_AIRGAP_COMPLETE=bash_source airgap)"
"""

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document (docs/user-guide.md, \"Scripts and "
                                "logs\") and nothing else on stdout.")


class Stopped(Exception):
    """A Ctrl-C or a SIGTERM during a command, carried past click (``__cause__``), which
    would write a blank line first, the one line of a log without its time."""


class PipeClosed(Exception):
    """A write to a pipe nobody reads any more (``airgap inspect B | head -1``), carried
    past click (``__cause__``), which would end with exit code 1."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as stopped:
            raise Stopped from stopped
        except BrokenPipeError as closed:
            raise PipeClosed from closed


def _session() -> Session:
    found = click.get_current_context().find_object(Session)
    return found if found is not None else Session()


def begin(command: str, as_json: bool = False,
          on_interrupt: str = "nothing was changed") -> Session:
    """The session of this run of ``command``: JSON or not, what an interrupt leaves."""
    session = _session()
    session.command, session.json, session.on_interrupt = command, as_json, on_interrupt
    return session


@contextlib.contextmanager
def reporting(session: Session, quiet: bool) -> Iterator[progress.CountingReporter]:
    """The reporter for this run: progress at a terminal, lines in a pipe, none quiet."""
    with reporters.make_reporter(quiet or session.json) as reporter:
        session.reporter = reporter
        yield reporter


@contextlib.contextmanager
def interruption_says(session: Session, left: Callable[[], str], *,
                      counts: bool = False) -> Iterator[None]:
    """On Ctrl-C or SIGTERM, the line printed says what ``left()`` reads from the disk then:
    what was kept, what was removed, what to run. The progress' counts (files done,
    partial) come first only with ``counts``: a fetch keeps what it finished, merge, split
    and join keep other things."""
    try:
        yield
    except KeyboardInterrupt:
        try:
            session.on_interrupt = left()
        except Exception:  # the line must come, whatever the disk holds
            session.on_interrupt = "run the same command again"
        if not counts:
            session.reporter = None
        raise


def emit(session: Session, result: Any, *, exit_code: int = ExitCode.OK,
         problems: Sequence[Any] = (), warnings: Sequence[str] = (),
         error: AirgapError | None = None) -> None:
    """Print the one JSON document of this run."""
    output.print_json(output.envelope(session.command, exit_code, result, problems=problems,
                                      warnings=warnings, error=error))
    session.json_printed = True


def show_report(session: Session, report: Report, exit_code: int,
                render_report: Callable[[Report], None]) -> None:
    """A verification's report: with ``--json``, the envelope with its problems and
    warnings; else as ``render_report`` draws it."""
    if session.json:
        emit(session, report.summary(), exit_code=exit_code,
             problems=[p.to_dict() for p in report.problems], warnings=report.warnings)
    else:
        render_report(report)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": 100},
             epilog=EPILOG)
@click.version_option(__version__, prog_name="airgap")
@click.option("--debug", is_flag=True, help="Show the whole trace of an unexpected error.")
@click.pass_context
def cli(context: click.Context, debug: bool) -> None:
    """Carry the Elastic package registry, agent binaries and integration packages
    into a network with no internet access, verified end to end."""
    session = context.ensure_object(Session)
    session.debug = session.debug or debug
