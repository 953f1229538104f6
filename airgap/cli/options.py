"""The options commands share, and the one table from settings to the options that set them.

Core code names a setting by its field (``setting("trust_keys")``); :func:`flags` shows
it as the option a user types (``--trust-key``).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from airgap.errors import name_settings

#: Each setting core code may name, and the option that sets it.
FLAGS = {
    "artifacts_dir": "--artifacts",
    "artifacts_url": "--artifacts-url",
    "ca_cert": "--ca-cert",
    "config_dir": "--config",
    "defend_url": "--defend-url",
    "docker": "--docker",
    "gnupg_home": "--gnupg-home",
    "images": "--image",
    "name": "--name",
    "output": "-o",
    "pin_packages": "--pin-packages",
    "platform": "--platform",
    "port": "--port",
    "registry": "--registry",
    "registry_url": "--registry-url",
    "replace": "--replace",
    "run": "--run",
    "sign_with": "--sign-with",
    "skip_verify": "--skip-verify",
    "tags": "--tag",
    "tls_cert": "--tls-cert",
    "tls_key": "--tls-key",
    "tls_min_version": "--tls-min-version",
    "trust_keys": "--trust-key",
    "with_tool": "--with-tool",
}


def flags(text: str) -> str:
    """``text`` with every setting it names shown as its option."""
    return name_settings(text, FLAGS)


MANIFEST = click.Path(path_type=Path, dir_okay=False)
FILE = click.Path(path_type=Path, dir_okay=False, exists=True)
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
                          help="Require a valid SHA512SUMS.asc by this public key "
                               "(repeatable).")
