"""``make demo``: airgap's main job end to end, against local stand-ins of Elastic.

Starts a real docker-registry holding a multi-platform stand-in of the package registry
image, and stand-ins for artifacts.elastic.co and epr.elastic.co on 127.0.0.1, then runs
the airgap commands an operator would, printing each one and its output.
Everything it writes stays in ``.demo/`` for you to look at.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.peers.site import LoopbackElastic  # noqa: E402


def airgap(*args: str) -> None:
    """Run one airgap command as a user would, showing it first; stop the demo on failure."""
    print(f"\n$ airgap {shlex.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "airgap", *args], cwd=REPO, check=False)
    if result.returncode != 0:
        raise SystemExit(f"demo: `airgap {args[0]}` failed with exit code {result.returncode}")


def main() -> None:
    workdir = REPO / ".demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    print("demo: starting loopback stand-ins for docker.elastic.co, artifacts.elastic.co "
          "and epr.elastic.co ...", flush=True)
    site = LoopbackElastic(workdir / "peers").start()
    try:
        manifest = workdir / "airgap.yaml"
        manifest.write_text(site.manifest_text())
        site.publish_plan(manifest)
        print(f"demo: registry {site.registry.url}, artifacts {site.artifacts.url}, "
              f"EPR {site.epr.url}")
        print(f"demo: manifest {manifest.relative_to(REPO)}:\n")
        print(manifest.read_text())
        airgap("plan", str(manifest.relative_to(REPO)))
        bundle = workdir / "bundle"
        airgap("fetch", str(manifest.relative_to(REPO)), "-o", str(bundle.relative_to(REPO)))
    finally:
        site.stop()
    print("\ndemo: done; everything it wrote is in .demo/")


if __name__ == "__main__":
    main()
