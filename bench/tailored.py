"""A tailored registry: its size beside Elastic's images, and the time to compose it.

Fetches (untimed) a tailored bundle from the loopback stand-ins: the two-platform server
stand-in as the base and ``--packages`` package versions of about ``--package-size``
KiB each (random bytes, stored: as incompressible as a real zip's deflated content). It
prints the image's size, base and packages apart, beside the sizes Elastic publishes for
its full and lite images. Then times, on the bundle's package files and a warm page
cache, the composition of the packages layer:

- ``tar --sort=name … | gzip -1`` (GNU tar and gzip: a deterministic tar, compressed at
  the same level, without any hashing);
- airgap's composition (``airgap.oci.compose.write_layer``: the same tar, gzip, the
  diff ID, the blob's sha256 and SHA-512, and each file's SHA-512 checked against what
  it was verified as, in one pass).

No target: the ratio is printed against 1.0 (as fast as ``tar | gzip -1``) for
reference only; the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from common import MIB, REPO, Contender, finish, measure, parse_args, remove, report, run_once

from tests.peers.site import LoopbackElastic

# The composition alone, from the SHA-512s the fetch verified (SHA512SUMS), as a fetch
# composes after its downloads.
COMPOSE = """
import sys
from pathlib import Path
from airgap.oci.compose import OCI, LayerFile, write_layer
from airgap.oci.layout import Layout
bundle, out = Path(sys.argv[1]), Path(sys.argv[2])
sums = dict(reversed(line.split("  ", 1))
            for line in (bundle / "SHA512SUMS").read_text().splitlines())
files = [LayerFile("packages/package-registry/" + p.name, p, p.stat().st_size,
                   sums[p.relative_to(bundle).as_posix()])
         for p in sorted((bundle / "packages").rglob("*")) if p.is_file()]
write_layer(Layout(out), files, OCI.layer)
"""


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--packages", type=int, default=24,
                        help="package versions in the image (default 24)")
    parser.add_argument("--package-size", type=int, default=4096,
                        help="KiB per package zip, about (default 4096)")


def main() -> None:
    bench, args = parse_args("tailored registry", __doc__ or "", options)
    work = bench.workdir
    site = LoopbackElastic(work / "peers").start()
    try:
        integrations = tuple(f"pkg{n:02d}" for n in range(max(args.packages // 2 - 3, 1)))
        manifest = work / "tailored.yaml"
        manifest.write_text(site.manifest_text(integrations=integrations, flavor="tailored")
                            .replace("registry:\n  flavor: tailored\n",
                                     "registry:\n  flavor: tailored\n  all_versions: true\n")
                            .replace("integrations:", "artifacts: {products: []}\n"
                                                      "integrations:"))
        site.publish_plan(manifest, package_size=args.package_size << 10)
        bundle = work / "bundle"
        print("fetching the tailored bundle (untimed) ...", flush=True)
        fetched = run_once([sys.executable, "-m", "airgap", "fetch", str(manifest), "-o",
                            str(bundle), "--quiet"], cwd=REPO)
        image = json.loads((bundle / "bundle.json").read_text())["image"]
        blobs = bundle / "images" / "blobs" / "sha256"

        def size(digests: set[str]) -> int:
            return sum((blobs / d[7:]).stat().st_size for d in digests)

        layer = image["tailored"]["layer"]
        own = {image["digest"], *(d for p in image["platforms"].values()
                                   for d in (p["manifest"], p["config"], *p["layers"]))}
        base = {d for p in image["platforms"].values() for d in p["layers"]} - {layer}
        packages = sorted(p for p in (bundle / "packages").rglob("*.zip"))
        zips = sum(p.stat().st_size for p in packages)
        print(f"\nfetch of the whole bundle: {fetched.seconds:.2f} s, peak RSS "
              f"{fetched.peak_rss / MIB:.1f} MiB")
        print(f"tailored image, {len(image['platforms'])} platforms: {size(own) / MIB:.1f} MiB"
              f" = server stand-in {size(base) / MIB:.1f} MiB + packages layer "
              f"{size({layer}) / MIB:.1f} MiB ({len(packages)} zips, {zips / MIB:.1f} MiB, "
              "with their .sig)")
        print("Elastic's full image: about 20 GB at 8.17.2 (7.7 GB at 8.10.3), its packages "
              "in one 21.3 GB layer; lite: a few hundred MB, 16 packages (published)")

        out_tar = work / "layer.tar.gz"
        out_layout = work / "layout"
        tar = (f"tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner "
               f"-C {bundle} -cf - packages | gzip -1 > {out_tar}")
        measure(bench, [
            Contender("tar | gzip -1", ["sh", "-c", tar], before=remove(out_tar),
                      note="GNU tar and gzip, no hashes"),
            Contender("airgap compose", [sys.executable, "-c", COMPOSE, str(bundle),
                                         str(out_layout)], before=remove(out_layout), cwd=REPO,
                      note="tar, gzip, diff ID, sha256 and SHA-512, files re-checked"),
        ])
        report(bench, size=zips + sum(p.stat().st_size for p in
                                      (bundle / "packages").rglob("*.sig")),
               pairs=[("airgap compose", "tar | gzip -1", 1.0)])
    finally:
        site.stop()
        finish(bench)


if __name__ == "__main__":
    main()
