"""Checking a bundle after transfer: ``airgap verify`` vs ``sha512sum -c SHA512SUMS``.

Fetches (untimed) a bundle of ``--size`` MiB from the loopback stand-ins: a two-platform
registry image with large shared layers, plus agent and beats binaries with their
``.sha512`` and ``.asc``. Then times, on the same files and a warm page cache:

- ``sha512sum -c SHA512SUMS`` (GNU coreutils, one file after another, one core);
- ``airgap verify`` (every file hashed against SHA512SUMS on all cores, plus every
  image digest, every ``.sha512`` and every OpenPGP signature, which sha512sum does not);
- ``airgap verify -j 1``, to show what comes from the hashing itself and what from
  parallelism.

Target: airgap >= 1.6x faster than sha512sum on 2 cores.
"""

from __future__ import annotations

import argparse
import os

from common import AIRGAP, MIB, Contender, finish, measure, parse_args, report, run_once, tree_size

from tests.peers.gpgkeys import SigningKey
from tests.peers.site import LoopbackElastic


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=2200, help="MiB of bundle, about")


def main() -> None:
    bench, args = parse_args("verify", __doc__ or "", options)
    work = bench.workdir
    image_mib = args.size * 3 // 4
    site = LoopbackElastic(work / "peers",
                           shared_layers=(image_mib * MIB // 3,) * 3).start()
    # What the user guide says to do: the isolated side trusts the operator's signature.
    operator = SigningKey("bench operator", "ops@bench.test")
    trust = ["--trust-key", str(operator.export_public(work / "ops.asc"))]
    try:
        manifest = work / "verify.yaml"
        manifest.write_text(site.manifest_text(integrations=("system", "fleet_server")))
        print(f"publishing and fetching a bundle of about {args.size} MiB (untimed) ...",
              flush=True)
        artifacts_mib = args.size - image_mib
        site.publish_plan(manifest, artifact_size=artifacts_mib * MIB // 6)
        bundle = work / "bundle"
        run_once([*AIRGAP, "fetch", str(manifest), "-o", str(bundle), "--quiet",
                  "--sign-with", operator.fingerprint, "--gnupg-home", str(operator.home)])
        size = tree_size(bundle)
        files = len((bundle / "SHA512SUMS").read_text().splitlines())
        print(f"bundle: {size / MIB:,.0f} MiB in {files} files", flush=True)

        measure(bench, [
            Contender("sha512sum -c SHA512SUMS", ["sha512sum", "--quiet", "-c", "SHA512SUMS"],
                      cwd=bundle, note="coreutils"),
            Contender("airgap verify", [*AIRGAP, "verify", str(bundle), *trust, "--quiet"],
                      note=f"-j {os.cpu_count()}, with signatures"),
            Contender("airgap verify -j 1",
                      [*AIRGAP, "verify", str(bundle), *trust, "--quiet", "--jobs", "1"],
                      note="one core, with signatures"),
        ])
        report(bench, size=size, pairs=[("airgap verify", "sha512sum -c SHA512SUMS", 1 / 1.6)])
    finally:
        site.stop()
        operator.close()
        finish(bench)


if __name__ == "__main__":
    main()
