"""The options commands share, and the one table from settings to the options that set them.

Core code names a setting by its field (``setting("trust_keys")``); :func:`flags` shows
it as the option a user types (``--trust-key``).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import click

from airgap.errors import name_settings

F = TypeVar("F", bound=Callable[..., Any])

#: Each setting core code may name, and the option that sets it.
FLAGS = {
    "artifacts_dir": "--artifacts",
    "artifacts_url": "--artifacts-url",
    "block": "--block",
    "ca_cert": "--ca-cert",
    "config_dir": "--config",
    "defend_url": "--defend-url",
    "docker": "--docker",
    "gnupg_home": "--gnupg-home",
    "insecure": "--insecure",
    "jobs": "--jobs",
    "images": "--image",
    "hard_link": "--hard-link",
    "header_timeout": "--header-timeout",
    "keepalive_timeout": "--keepalive-timeout",
    "max_connections": "--max-connections",
    "max_file": "--max-file",
    "name": "--name",
    "network": "--network",
    "output": "-o",
    "partial": "--partial",
    "passphrase_file": "--passphrase-file",
    "pin_packages": "--pin-packages",
    "platform": "--platform",
    "port": "--port",
    "registry": "--registry",
    "registry_url": "--registry-url",
    "replace": "--replace",
    "run": "--run",
    "sign_with": "--sign-with",
    "since": "--since",
    "size": "--size",
    "skip_verify": "--skip-verify",
    "tags": "--tag",
    "tls_cert": "--tls-cert",
    "tls_key": "--tls-key",
    "tls_min_version": "--tls-min-version",
    "trust_keys": "--trust-key",
    "trust_signers": "--trust-signer",
    "with_tool": "--with-tool",
}


def flags(text: str) -> str:
    """``text`` with every setting it names shown as its option."""
    return name_settings(text, FLAGS)


class RegularFile(click.Path):
    """An existing regular file: a FIFO, a device or a folder is refused at once (reading
    one would block for ever, or never end)."""

    def __init__(self, *, exists: bool = True) -> None:
        super().__init__(path_type=Path, dir_okay=False, exists=exists)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        path = super().convert(value, param, ctx)
        try:
            mode = Path(os.fsdecode(path)).stat().st_mode
        except OSError:
            return path  # not there: exists=False allows it, the command says what it does
        if not stat.S_ISREG(mode):
            self.fail(f"{str(path)!r} is not a regular file (a FIFO, device or folder)",
                      param, ctx)
        return path


MANIFEST = RegularFile(exists=False)
FILE = RegularFile()
DIR = click.Path(path_type=Path, file_okay=False)
BUNDLE = click.Path(path_type=Path, file_okay=False, exists=True)

jobs = click.option("--jobs", "-j", type=click.IntRange(1, 64), default=8, show_default=True,
                    help="Transfers in parallel with each server.")
jobs_verify = click.option("--jobs", "-j", type=click.IntRange(1, 64),
                           default=os.cpu_count() or 2, show_default="CPU count",
                           help="Files hashed in parallel.")
quiet = click.option("--quiet", "-q", is_flag=True,
                     help="No progress display (warnings still go to stderr).")
ca_cert = click.option("--ca-cert", type=FILE,
                       help="PEM file of CAs to trust for every source (besides the system's).")
trust_keys = click.option("--trust-key", "trust_keys", type=FILE, multiple=True,
                          help="Require a valid SHA512SUMS.asc by this public key, the "
                               "operator's: it then vouches for every file of the bundle "
                               "(bundle.json, the signer keys in keys/, the image, Elastic "
                               "Defend's artifacts in security/, the wheelhouse in tools/) "
                               "and binds each file to its name (repeatable).")
trust_signers = click.option("--trust-signer", "trust_signers", type=FILE, multiple=True,
                             help="Trust this public key (your own copy, not the bundle's) "
                                  "to have signed binaries and packages, as trust.keys did "
                                  "at fetch time (repeatable). The Elastic key is always "
                                  "trusted, from airgap itself.")


def platform(help_text: str) -> Callable[[F], F]:
    """``--platform``, taking what docker takes (``linux/arm64/v8``, ``arm64``, ``amd64``)."""
    return click.option("--platform", metavar="[OS/]ARCH[/VARIANT]", help=help_text)


def tags(what: str) -> Callable[[F], F]:
    """``--tag``, repeatable."""
    return click.option("--tag", "tags", multiple=True, metavar="NAME[:TAG]",
                        help=f"{what} (repeatable).")


_UNITS = {"": 1, "B": 1, "K": 1000, "KB": 1000, "M": 1000**2, "MB": 1000**2,
          "G": 1000**3, "GB": 1000**3, "T": 1000**4, "TB": 1000**4,
          "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)(?:\s*-\s*(\d+))?\Z")


def parse_size(text: str) -> int:
    """A size as people write one: ``4GiB``, ``4.7GB``, ``700MB``, ``4GiB-1``, ``2048``;
    raises :class:`click.BadParameter` for anything else."""
    found = _SIZE.match(text.strip())
    unit = found.group(2).upper() if found else ""
    if found is None or unit not in _UNITS:
        raise click.BadParameter(f"{text!r} is not a size (say 4GiB, 4.7GB, 700MB or 4GiB-1)")
    size = int(Decimal(found.group(1)) * _UNITS[unit]) - int(found.group(3) or 0)
    if size < 1:
        raise click.BadParameter(f"{text!r} is not a size of at least one byte")
    return size


def size_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """The click callback that reads a SIZE option."""
    return None if value is None else parse_size(value)
