"""Agent and beats binaries: ``airgap fetch`` vs the curl loop of Elastic's air-gap page.

Publishes, on the loopback artifacts.elastic.co stand-in, every file a manifest of six
products x two architectures x three formats plans (36 files, ``--size`` MiB in all),
each with its ``.sha512`` and a real ``.asc`` from a throwaway key. Then times:

- the way Elastic's air-gap page has operators do it, made honest: one ``curl`` after
  another for each file, its ``.sha512`` and its ``.asc``, then ``sha512sum -c`` and
  ``gpg --verify`` for each file (the key imported beforehand, untimed);
- ``airgap fetch`` of the same manifest, which downloads, checks and signs off the same
  files in parallel and also writes the bundle index. It also pulls a small
  stand-in registry image (about 6 MiB), because every bundle holds one; the peer does
  not, so this counts against airgap.

The files are all the same size, ``--size`` MiB in all: 2 GiB by default. Elastic's
own files for this manifest weigh several GB (an elastic-agent archive alone is hundreds
of MB); at the issue's minimum of 500 MB, airgap's fixed costs (a quarter of a second
of start-up on one core, a gpg process per file) are a third of its run, so the figure
says more about them than about throughput. docs/benchmarks.md gives both.

Target: airgap >= 3x faster.
"""

from __future__ import annotations

import argparse
import os
import subprocess

from common import AIRGAP, MIB, Contender, finish, measure, parse_args, remove, report

from airgap.manifest import load_manifest
from airgap.manifest.plan import make_plan
from tests.peers.site import LoopbackElastic

PRODUCTS = ("elastic-agent", "filebeat", "metricbeat", "auditbeat", "packetbeat", "heartbeat")

SEED_LOOP = """\
set -euo pipefail
cd "$1"
base="$2"
while read -r path; do
  name="${path##*/}"
  curl -fsSL -o "$name" "$base$path"
  curl -fsSL -o "$name.sha512" "$base$path.sha512"
  curl -fsSL -o "$name.asc" "$base$path.asc"
done < "$3"
while read -r path; do
  name="${path##*/}"
  sha512sum --quiet -c "$name.sha512"
  gpg --batch --quiet --verify "$name.asc" "$name" 2>/dev/null
done < "$3"
"""


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=2048,
                        help="MiB of binaries in all (default 2048; the issue asks for at "
                             "least 500 MB, Elastic's own files for this manifest are several "
                             "GB)")
    parser.add_argument("--jobs", type=int, default=8, help="airgap fetch --jobs")


def main() -> None:
    bench, args = parse_args("artifacts", __doc__ or "", options)
    work = bench.workdir
    site = LoopbackElastic(work / "peers", shared_layers=(64 << 10,)).start()
    try:
        manifest = work / "artifacts.yaml"
        manifest.write_text("\n".join([
            "apiVersion: airgap/v1", "kind: Bundle", "stack:", f"  version: {site.tag}",
            "platforms:", "  arch: [x86_64, arm64]", "  formats: [archive, deb, rpm]",
            "artifacts:", f"  products: [{', '.join(PRODUCTS)}]", "packages: false",
            "sources:", f"  registry: {site.registry.url}", f"  artifacts: {site.artifacts.url}",
            "trust:", f"  keys: [{site.public_key}]", "",
        ]))
        paths = [item.path for item in make_plan(load_manifest(manifest)).artifacts]
        per_file = args.size * MIB // len(paths)
        print(f"publishing {len(paths)} files of {per_file / MIB:.1f} MiB, signed ...",
              flush=True)
        site.publish_plan(manifest, artifact_size=per_file)
        size = per_file * len(paths)

        listing = work / "files.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))
        script = work / "loop.sh"
        script.write_text(SEED_LOOP)
        gnupg = work / "gnupg"
        gnupg.mkdir(mode=0o700)
        subprocess.run(["gpg", "--batch", "--quiet", "--homedir", str(gnupg), "--import",
                        str(site.public_key)], check=True, capture_output=True)
        loop_out = work / "loop"

        def fresh_loop_dir() -> None:
            remove(loop_out)()
            loop_out.mkdir()

        env = {**os.environ, "GNUPGHOME": str(gnupg)}
        bundle = work / "bundle"
        measure(bench, [
            Contender("curl loop + sha512sum + gpg",
                      ["bash", str(script), str(loop_out), site.artifacts.url, str(listing)],
                      before=fresh_loop_dir, env=env, note=f"{len(paths)} files, sequential"),
            Contender("airgap fetch",
                      [*AIRGAP, "fetch", str(manifest), "-o", str(bundle), "--quiet",
                       "--jobs", str(args.jobs)],
                      before=remove(bundle), note=f"same files + small image, -j {args.jobs}"),
        ])
        report(bench, size=size,
               pairs=[("airgap fetch", "curl loop + sha512sum + gpg", 1 / 3)])
    finally:
        site.stop()
        finish(bench)


if __name__ == "__main__":
    main()
