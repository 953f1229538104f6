"""``make wheelhouse``: airgap and every dependency as wheels, to install with no index.

Writes ``dist/airgap-<version>-wheelhouse/``: airgap's own wheel, the wheels of each
dependency for every Python version and platform in ``PYTHONS`` x ``PLATFORMS`` (pip
download with ``--only-binary``, ``--platform``, ``--python-version``, from PyPI, on the
connected side), and ``install.sh``, which makes a virtual environment and installs
airgap into it with ``pip install --no-index --find-links``. ``airgap fetch --with-tool``
carries the folder in a bundle (``tools/``, listed in SHA512SUMS); docs/user-guide.md
says how the isolated side checks and installs it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: CPython versions a site may run airgap with (airgap needs 3.11 or later).
PYTHONS = ("3.11", "3.12", "3.13")
#: glibc Linux on both CPUs: the manylinux tags pip takes wheels for, newest first.
PLATFORMS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "aarch64": ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
}
INSTALL_SCRIPT = "install.sh"


def airgap_version() -> str:
    """The version in airgap/__init__.py, read without importing airgap."""
    text = (REPO / "airgap" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if match is None:
        raise SystemExit("wheelhouse: no __version__ in airgap/__init__.py")
    return match.group(1)


def build_command(python: str, dest: Path) -> list[str]:
    """pip building airgap's own wheel (its build backend from the index)."""
    return [python, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dest),
            str(REPO)]


def download_command(python: str, wheel: Path, dest: Path, version: str, arch: str
                     ) -> list[str]:
    """pip downloading ``wheel``'s dependencies, as wheels only, for CPython ``version``
    on glibc Linux ``arch``, whatever this machine is."""
    abi = "cp" + version.replace(".", "")
    argv = [python, "-m", "pip", "download", "--quiet", "--dest", str(dest),
            "--only-binary=:all:", "--implementation", "cp", "--python-version", version,
            "--abi", abi, "--abi", "abi3", "--abi", "none"]
    for tag in PLATFORMS[arch]:
        argv += ["--platform", tag]
    return [*argv, str(wheel)]


def install_script(version: str) -> str:
    """``install.sh``: a virtual environment with airgap, from this folder alone."""
    return f"""#!/bin/sh
# Install airgap {version} from this wheelhouse, with no package index:
#   ./{INSTALL_SCRIPT} [VENV]      (default /opt/airgap; PYTHON=python3.12 to choose)
# It makes the virtual environment VENV and installs airgap into it; then run
# VENV/bin/airgap. Check the files first: sha512sum -c SHA512SUMS in the bundle.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${{1:-/opt/airgap}}
python=${{PYTHON:-python3}}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11) and "needs Python 3.11+")'
"$python" -m venv "$venv"
PIP_NO_INDEX=1 "$venv/bin/python" -m pip install --quiet --no-index --find-links "$here" \\
    "airgap=={version}"
"$venv/bin/airgap" --version
echo "installed: $venv/bin/airgap"
"""


def build(output: Path, python: str, pythons: tuple[str, ...], arches: tuple[str, ...]
          ) -> Path:
    """Build the wheelhouse at ``output`` (replaced whole once complete)."""
    version = airgap_version()
    staging = output.with_name(output.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    run(build_command(python, staging))
    wheels = sorted(staging.glob(f"airgap-{version}-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"wheelhouse: expected one airgap {version} wheel, got {wheels}")
    for version_tag in pythons:
        for arch in arches:
            print(f"wheelhouse: dependencies for CPython {version_tag} on linux {arch}",
                  flush=True)
            run(download_command(python, wheels[0], staging, version_tag, arch))
    script = staging / INSTALL_SCRIPT
    script.write_text(install_script(version), encoding="utf-8")
    script.chmod(0o755)
    shutil.rmtree(output, ignore_errors=True)
    staging.replace(output)
    return output


def run(argv: list[str]) -> None:
    """Run ``argv``; stop with its message when it fails."""
    result = subprocess.run(argv, check=False)
    if result.returncode != 0:
        raise SystemExit(f"wheelhouse: `{' '.join(argv[:4])} ...` failed with exit code "
                         f"{result.returncode}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path,
                        default=REPO / "dist" / f"airgap-{airgap_version()}-wheelhouse")
    parser.add_argument("--python-version", dest="pythons", action="append",
                        help=f"CPython version to carry wheels for (default: "
                             f"{', '.join(PYTHONS)})")
    parser.add_argument("--arch", dest="arches", action="append", choices=sorted(PLATFORMS),
                        help="Linux CPU to carry wheels for (default: both)")
    args = parser.parse_args(argv)
    output = build(args.output, sys.executable, tuple(args.pythons or PYTHONS),
                   tuple(args.arches or PLATFORMS))
    count = sum(1 for _ in output.glob("*.whl"))
    print(f"wheelhouse: {output}: {count} wheels and {INSTALL_SCRIPT}")


if __name__ == "__main__":
    main()
