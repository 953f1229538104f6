"""The ``airgap`` command line: parse options, call one function, render its result.

Errors become exit codes here and nowhere else (:func:`main`): 0 ok, 1 failed,
2 usage or manifest error, 3 verification failed.
"""

from __future__ import annotations

from pathlib import Path

import click

from airgap import __version__, ui
from airgap.errors import AirgapError, ExitCode
from airgap.manifest import load_manifest
from airgap.plan import make_plan

_MANIFEST = click.Path(path_type=Path, dir_okay=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="airgap")
def cli() -> None:
    """Carry the Elastic package registry, agent binaries and integration packages
    into a network with no internet access, verified end to end."""


@cli.command()
@click.argument("manifest", type=_MANIFEST)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(manifest: Path, as_json: bool) -> None:
    """Show everything a fetch of MANIFEST would get, and why."""
    result = make_plan(load_manifest(manifest))
    if as_json:
        ui.print_json(result.to_dict())
    else:
        ui.render_plan(result)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and turn every outcome into an exit code."""
    try:
        cli.main(args=argv, prog_name="airgap", standalone_mode=False)
    except click.exceptions.Abort:
        ui.stderr.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE if exc.exit_code == 2 else exc.exit_code
    except AirgapError as exc:
        ui.print_error(exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        ui.stderr.print("interrupted")
        return 130
    return ExitCode.OK
