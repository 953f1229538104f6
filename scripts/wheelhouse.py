"""``make wheelhouse``: airgap and every dependency as wheels, to install with no index.

Writes ``dist/airgap-<version>-wheelhouse/``: airgap's own wheel, the wheels of each
dependency for every Python version and platform in ``PYTHONS`` x ``PLATFORMS`` (pip
download with ``--only-binary``, ``--platform``, ``--python-version``, from PyPI, on the
connected side), ``requirements.txt``, which pins every wheel by name, version and
SHA-256, and ``install.sh``, which makes a virtual environment and installs airgap into
it with ``pip install --no-index --find-links --require-hashes``, so that pip installs
only the wheels listed, with the bytes listed. ``airgap fetch --with-tool``
carries the folder in a bundle (``tools/``, listed in SHA512SUMS); docs/user-guide.md
says how the isolated side checks and installs it.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
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
REQUIREMENTS = "requirements.txt"
#: ``platform_machine`` on glibc Linux, for each of ``PLATFORMS``.
MACHINES = {"x86_64": "x86_64", "aarch64": "aarch64"}


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
    """``install.sh``: a virtual environment with airgap, from this folder alone, each
    wheel checked against its SHA-256 in ``requirements.txt``."""
    return f"""#!/bin/sh
# Install airgap {version} from this wheelhouse, with no package index:
#   ./{INSTALL_SCRIPT} [VENV]      (default /opt/airgap; PYTHON=python3.12 to choose)
# It makes the virtual environment VENV and installs airgap into it; then run
# VENV/bin/airgap. Check the files first: sha512sum -c SHA512SUMS in the bundle.
# pip installs only the wheels {REQUIREMENTS} lists, each with the SHA-256 it gives.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${{1:-/opt/airgap}}
python=${{PYTHON:-python3}}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11) and "needs Python 3.11+")'
"$python" -m venv "$venv"
PIP_NO_INDEX=1 "$venv/bin/python" -m pip install --quiet --no-index --find-links "$here" \\
    --require-hashes --only-binary=:all: --requirement "$here/{REQUIREMENTS}"
"$venv/bin/airgap" --version
echo "installed: $venv/bin/airgap"
"""


def wheel_name(wheel: Path) -> tuple[str, str]:
    """A wheel's project name (normalised as pip compares it) and version, from its file
    name (PEP 427: ``name-version[-build]-python-abi-platform.whl``)."""
    parts = wheel.name.removesuffix(".whl").split("-")
    if not wheel.name.endswith(".whl") or len(parts) not in (5, 6):
        raise SystemExit(f"wheelhouse: {wheel.name} is not a wheel's file name")
    return re.sub(r"[-_.]+", "-", parts[0]).lower(), parts[1]


def sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path``, in hex, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def requirements(wheels: dict[tuple[str, str], list[Path]]) -> str:
    """``requirements.txt`` for pip's hash-checking mode: each project pinned to its
    version, with the SHA-256 of every wheel of it in the wheelhouse (pip takes the one
    that fits). ``wheels`` gives the wheels each (Python version, CPU) needs; a project
    whose version differs between them gets one line per version, with a marker."""
    found: dict[str, dict[str, tuple[set[Path], set[tuple[str, str]]]]] = {}
    for target, paths in wheels.items():
        for path in paths:
            name, version = wheel_name(path)
            files, targets = found.setdefault(name, {}).setdefault(version, (set(), set()))
            files.add(path)
            targets.add(target)
    lines = []
    for name in sorted(found):
        for version, (files, targets) in sorted(found[name].items()):
            marker = ""
            if len(found[name]) > 1:
                marker = " ; " + " or ".join(
                    f'(python_version == "{python}" and platform_machine == '
                    f'"{MACHINES[arch]}")' for python, arch in sorted(targets))
            hashes = sorted({sha256(f) for f in files})
            lines.append(f"{name}=={version}{marker} \\\n" + " \\\n".join(
                f"    --hash=sha256:{digest}" for digest in hashes))
    return "\n".join(lines) + "\n"


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
    needs: dict[tuple[str, str], list[Path]] = {}
    for version_tag in pythons:
        for arch in arches:
            print(f"wheelhouse: dependencies for CPython {version_tag} on linux {arch}",
                  flush=True)
            # A folder of its own, so that what this target needs is known for the
            # requirements' markers; pip's cache spares downloading a wheel twice.
            own = staging.with_name(f"{staging.name}-{version_tag}-{arch}")
            shutil.rmtree(own, ignore_errors=True)
            own.mkdir()
            run(download_command(python, wheels[0], own, version_tag, arch))
            needs[(version_tag, arch)] = [wheels[0]]
            for wheel in sorted(own.glob("*.whl")):
                kept = staging / wheel.name
                if kept.exists() and not filecmp.cmp(kept, wheel, shallow=False):
                    raise SystemExit(f"wheelhouse: two different files named {wheel.name}")
                wheel.replace(kept)
                needs[(version_tag, arch)].append(kept)
            shutil.rmtree(own)
    (staging / REQUIREMENTS).write_text(requirements(needs), encoding="utf-8")
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
    print(f"wheelhouse: {output}: {count} wheels, {REQUIREMENTS} and {INSTALL_SCRIPT}")


if __name__ == "__main__":
    main()
