"""Bounded manifests: what would take gigabytes or minutes is refused at once, exit 2.

Measured as a person meets it: ``airgap plan FILE`` in a process of its own, whose own
resource usage (``wait4``) says how much memory and CPU the refusal took, against the
same command on a valid manifest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from airgap.manifest.strict import Bounds, TooComplex, check_bounds
from tests.conftest import REPO

VALID = """apiVersion: airgap/v1
kind: Bundle
stack:
  version: 9.0.0
platforms: &platforms
  arch: [x86_64, arm64]
integrations: [system, nginx]
"""


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


# The child's own peak memory (VmHWM: that of its own address space, which ru_maxrss is
# not: it keeps the high-water mark of the test process it was forked from).
_PLAN = """import re, sys
from airgap.cli.main import main
code = main(["plan", sys.argv[1]])
status = open("/proc/self/status").read()
open(sys.argv[2], "w").write(re.search(r"VmHWM:\\s+(\\d+)", status).group(1))
sys.exit(code)
"""


@dataclass(frozen=True)
class Usage:
    peak_kib: int
    cpu: float


def plan(path: Path, tmp_path: Path) -> tuple[int, str, Usage]:
    """``airgap plan PATH`` in a process of its own: its exit code, stderr, peak memory
    and CPU time."""
    out, err, peak = tmp_path / "out", tmp_path / "err", tmp_path / "peak"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", _PLAN, str(path), str(peak)],
                                   cwd=REPO, stdout=stdout, stderr=stderr,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    return (process.returncode, err.read_text(),
            Usage(int(peak.read_text()), usage.ru_utime + usage.ru_stime))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Usage:
    """What ``airgap plan`` costs on a valid manifest: the start-up, the imports."""
    folder = tmp_path_factory.mktemp("baseline")
    (folder / "site.yaml").write_text(VALID)
    code, err, usage = plan(folder / "site.yaml", folder)
    assert code == 0, err
    return usage


DOCUMENTS = {
    "a billion laughs of nine levels": (billion_laughs(), "aliases"),
    "[ nested 20,000 deep": ("apiVersion: " + "[" * 20_000 + "]" * 20_000 + "\n", "deeper"),
    "{ nested 20,000 deep": ("a: " + "{b: " * 20_000 + "1" + "}" * 20_000 + "\n", "deeper"),
    "an alias inside the node it names": ("a: &a [1, *a]\n", "never end"),
    "50 MB of one comment": ("#" + "x" * (50 << 20) + "\n", "1024 KiB"),
}


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_a_hostile_manifest_is_refused_fast_in_little_memory(
        name: str, tmp_path: Path, baseline: Usage) -> None:
    text, said = DOCUMENTS[name]
    path = tmp_path / "site.yaml"
    path.write_text(text)
    code, err, usage = plan(path, tmp_path)
    assert code == 2, err
    assert said in err and str(path) in err, err
    assert "Traceback" not in err
    # A few MB above what the valid manifest took, and under a second of CPU more (wall
    # time would measure the machine's load, not airgap).
    assert usage.peak_kib - baseline.peak_kib < 20 << 10, (usage, baseline)
    assert usage.cpu - baseline.cpu < 1.0, (usage, baseline)


def test_the_bounds_leave_room_for_what_manifests_use() -> None:
    check_bounds(VALID)  # anchors and aliases are fine in measure
    check_bounds("a: &x {b: 1}\nc: *x\nd: *x\n")
    assert yaml.safe_load(billion_laughs(3))["a3"][0][0] == ["lol"] * 10
    check_bounds(billion_laughs(3), Bounds(max_nodes=2000))
    with pytest.raises(TooComplex, match="values once its aliases are expanded"):
        check_bounds(billion_laughs(4), Bounds(max_nodes=2000))


def test_the_line_of_the_problem_is_given() -> None:
    with pytest.raises(TooComplex) as refused:
        check_bounds("a: 1\nb: 2\nc: " + "[" * 40 + "]" * 40 + "\n")
    assert refused.value.line == 3


@pytest.mark.parametrize("kind", ["FIFO", "device", "directory"])
def test_a_manifest_that_is_not_a_regular_file_is_refused_at_once(
        kind: str, tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    if kind == "FIFO":
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    else:
        path.mkdir()
    result = subprocess.run([sys.executable, "-m", "airgap", "plan", str(path)], cwd=REPO,
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr and "Traceback" not in result.stderr


def test_load_manifest_itself_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    from airgap.errors import ManifestError
    from airgap.manifest import load_manifest

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ManifestError, match="not a regular file"):
        load_manifest(fifo)
