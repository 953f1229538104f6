"""What every benchmark shares: running a command, timing it, its peak memory, the table.

Each benchmark runs a peer tool and airgap on the same data, on the same loopback peers
the tests use (tests/peers), and prints wall-clock times (median of ``--runs``), the
ratio of airgap's time to the peer's and airgap's peak resident memory. Nothing here
asserts a figure: the numbers go to docs/benchmarks.md by hand, with the machine they
were measured on.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

AIRGAP = [sys.executable, "-m", "airgap"]
MIB = 1 << 20


@dataclass(frozen=True)
class Sample:
    """One timed run of one command."""

    seconds: float
    peak_rss: int  # bytes: the largest of the process and the children it waited for
    cpu: float = 0.0  # user + system CPU-seconds of the command and the children it waited for


@dataclass(frozen=True)
class Measured:
    """Every run of one contender."""

    name: str
    samples: tuple[Sample, ...]
    note: str = ""

    @property
    def seconds(self) -> float:
        """The median wall-clock time."""
        return statistics.median(s.seconds for s in self.samples)

    @property
    def cpu(self) -> float:
        """The median CPU time (user + system): on a machine shared with other work it
        moves far less than the wall-clock time does."""
        return statistics.median(s.cpu for s in self.samples)

    @property
    def peak_rss(self) -> int:
        """The highest peak resident memory of any run."""
        return max(s.peak_rss for s in self.samples)


@dataclass
class Bench:
    """A benchmark's options and scratch directory."""

    title: str
    runs: int
    workdir: Path
    keep: bool
    warmup: int = 1
    results: list[Measured] = field(default_factory=list)


def parse_args(title: str, description: str,
               extra: Callable[[argparse.ArgumentParser], None] | None = None
               ) -> tuple[Bench, argparse.Namespace]:
    """Common options: ``--runs``, ``--workdir`` (default: a new directory in /var/tmp)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed runs of each command first (default 1)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="scratch directory (default: a new one under /var/tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    if extra:
        extra(parser)
    args = parser.parse_args()
    compile_airgap()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="airgap-bench-", dir="/var/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    return Bench(title, args.runs, workdir.resolve(), args.keep, args.warmup), args


def compile_airgap() -> None:
    """Write airgap's bytecode, as installing it from a wheel does: an editable install
    run with PYTHONDONTWRITEBYTECODE set (as in many CI images) would otherwise compile
    every module from source at every start, about 0.1 s that no installed copy pays."""
    compileall.compile_dir(REPO / "airgap", quiet=1)


# Linux carries a process's peak RSS across exec, so a command started straight from this
# (large) Python process would report at least our own size. A small wrapper forks the
# command afresh and reports the command's own peak through a file.
_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss * 1024} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_once(argv: Sequence[str], *, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> Sample:
    """Run a command to completion; its wall-clock time and peak RSS."""
    command = list(argv)
    with tempfile.NamedTemporaryFile(prefix="airgap-bench-rss-") as rss:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-S", "-c", _WRAPPER, rss.name, *command],
                                env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, check=False)
        seconds = time.perf_counter() - started
        peak, cpu = (Path(rss.name).read_text() or "0 0").split()
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace")
        raise SystemExit(f"bench: `{' '.join(command)}` failed ({result.returncode}):\n"
                         f"{stderr[-3000:]}")
    return Sample(seconds, int(peak), float(cpu))


@dataclass(frozen=True)
class Contender:
    """One command to time, with what to do (untimed) before each run."""

    name: str
    argv: Sequence[str]
    before: Callable[[], None] | None = None
    env: dict[str, str] | None = None
    cwd: Path | None = None
    note: str = ""


def measure(bench: Bench, contenders: Sequence[Contender]) -> list[Measured]:
    """Time every contender ``bench.runs`` times, taking turns (A, B, A, B, ...), after
    ``bench.warmup`` untimed turns.

    Taking turns keeps a machine that drifts during the benchmark (page cache, the Docker
    engine's storage, a noisy neighbour) from favouring whichever command ran first; the
    warm-up turns keep the first timed run of each from paying for a cold start (a VM
    touching memory for the first time, files not yet in the page cache), as hyperfine's
    ``--warmup`` does; and a sync before each run keeps it from paying for the writes of
    the run before.
    """
    samples: dict[str, list[Sample]] = {c.name: [] for c in contenders}
    for number in range(-bench.warmup, bench.runs):
        for contender in contenders:
            if contender.before:
                contender.before()
            os.sync()  # the last run's writes go to disk now, not during this one
            sample = run_once(contender.argv, env=contender.env, cwd=contender.cwd)
            label = f"run {number + 1}" if number >= 0 else "warm-up"
            print(f"  {contender.name:<34} {label:>7}: {sample.seconds:7.2f} s, "
                  f"CPU {sample.cpu:6.2f} s, peak RSS {sample.peak_rss / MIB:6.1f} MiB",
                  flush=True)
            if number >= 0:
                samples[contender.name].append(sample)
    measured = [Measured(c.name, tuple(samples[c.name]), c.note) for c in contenders]
    bench.results.extend(measured)
    return measured


def remove(*paths: Path) -> Callable[[], None]:
    """A ``before`` hook that deletes outputs of the previous run."""
    def clean() -> None:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    return clean


def tree_size(path: Path) -> int:
    """Total bytes of the regular files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def machine() -> str:
    """One line saying what these figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, " \
           f"{platform.system()} {platform.release()}"


def report(bench: Bench, *, size: int, pairs: Sequence[tuple[str, str, float]]) -> None:
    """Print the table and each (airgap, peer, target) ratio of median times."""
    by_name = {m.name: m for m in bench.results}
    print(f"\n== {bench.title} ==")
    print(f"data: {size / MIB:,.0f} MiB; {bench.runs} runs each after {bench.warmup} "
          f"warm-up, median shown; {machine()}")
    print(f"{'command':<36}{'median s':>10}{'MiB/s':>9}{'CPU s':>8}{'peak RSS MiB':>14}")
    for m in bench.results:
        print(f"{m.name:<36}{m.seconds:>10.2f}{size / MIB / m.seconds:>9.0f}{m.cpu:>8.2f}"
              f"{m.peak_rss / MIB:>14.1f}" + (f"  ({m.note})" if m.note else ""))
    for ours, theirs, target in pairs:
        ratio = by_name[ours].seconds / by_name[theirs].seconds
        verdict = "meets" if ratio <= target else "MISSES"
        # Each turn's own ratio too: their spread says how far to trust the medians'.
        turns = sorted(a.seconds / b.seconds for a, b in
                       zip(by_name[ours].samples, by_name[theirs].samples, strict=True))
        print(f"ratio {ours} / {theirs} = {ratio:.2f} (target <= {target:.2f}: {verdict}); "
              f"turn by turn {turns[0]:.2f} to {turns[-1]:.2f}, median "
              f"{statistics.median(turns):.2f}; CPU time "
              f"{by_name[ours].cpu / max(by_name[theirs].cpu, 1e-9):.2f}")


def finish(bench: Bench) -> None:
    """Remove the scratch directory unless asked to keep it."""
    if bench.keep:
        print(f"scratch kept in {bench.workdir}")
    else:
        shutil.rmtree(bench.workdir, ignore_errors=True)


def image_only_manifest(path: Path, registry_url: str, *, tag: str,
                        arch: Sequence[str] = ("x86_64", "arm64")) -> Path:
    """A manifest that fetches the registry image and nothing else."""
    path.write_text("\n".join([
        "apiVersion: airgap/v1",
        "kind: Bundle",
        "stack:",
        f"  version: {tag}",
        "platforms:",
        f"  arch: [{', '.join(arch)}]",
        "artifacts:",
        "  products: []",
        "packages: false",
        "sources:",
        f"  registry: {registry_url}",
        "",
    ]))
    return path
