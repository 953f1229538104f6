"""Pulling the registry image: ``airgap fetch`` (image only) vs skopeo vs docker pull + save.

Builds a multi-platform image (linux/amd64 and linux/arm64) whose shared layers hold
``--size`` MiB of incompressible data in ``--layers`` layers, pushes it to a loopback
docker-registry with skopeo, then times:

- ``airgap fetch`` of a manifest naming only the image, both platforms, into a bundle;
- ``skopeo copy --all docker://… oci:…``, the daemonless peer, both platforms;
- ``docker pull`` + ``docker save`` against our own dockerd (vfs storage), which is what
  Elastic's air-gap page tells operators to do (one platform: docker pulls only the
  engine's).

Target: airgap <= 0.8 x skopeo; airgap's peak RSS <= 150 MiB.
"""

from __future__ import annotations

import argparse
import subprocess

from common import (
    AIRGAP,
    MIB,
    Contender,
    finish,
    image_only_manifest,
    measure,
    parse_args,
    remove,
    report,
)

from tests.peers.images import build_test_image, push_image
from tests.peers.processes import Dockerd, DockerRegistry

REPOSITORY = "package-registry/distribution"
TAG = "9.0.0"


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=1024, help="MiB of shared layer data")
    parser.add_argument("--layers", type=int, default=4, help="shared layers")
    parser.add_argument("--jobs", type=int, default=8, help="airgap fetch --jobs")
    parser.add_argument("--no-docker", action="store_true", help="skip docker pull + save")


def main() -> None:
    bench, args = parse_args("image fetch", __doc__ or "", options)
    work = bench.workdir
    registry = DockerRegistry(work / "registry").start()
    engine = None
    try:
        per_layer = args.size * MIB // args.layers
        print(f"building a {args.size} MiB, {args.layers}-layer, 2-platform image ...",
              flush=True)
        image = build_test_image(work / "image", tag=TAG, shared_layers=(per_layer,) * args.layers)
        push_image(image, registry.host, REPOSITORY)
        size = image.size
        source = f"{registry.host}/{REPOSITORY}:{TAG}"

        manifest = image_only_manifest(work / "image.yaml", registry.url, tag=TAG)
        bundle = work / "bundle"
        layout = work / "skopeo-oci"
        contenders = [
            Contender("airgap fetch (image only)",
                      [*AIRGAP, "fetch", str(manifest), "-o", str(bundle), "--quiet",
                       "--jobs", str(args.jobs)], before=remove(bundle), note="2 platforms"),
            Contender("skopeo copy --all docker:// oci:",
                      ["skopeo", "copy", "--all", "--quiet", "--src-tls-verify=false",
                       f"docker://{source}", f"oci:{layout}:{TAG}"], before=remove(layout),
                      note="2 platforms"),
        ]
        pairs = [("airgap fetch (image only)", "skopeo copy --all docker:// oci:", 0.8)]
        if not args.no_docker:
            engine = Dockerd().start()
            env = engine.env()
            archive = work / "docker-save.tar"

            def reset() -> None:
                remove(archive)()
                subprocess.run(["docker", "image", "rm", "--force", source], env=env,
                               capture_output=True, check=False)

            command = f"docker pull --quiet {source} && docker save -o {archive} {source}"
            contenders.append(Contender("docker pull + docker save", ["/bin/sh", "-c", command],
                                        env=env, before=reset, note="1 platform, vfs storage"))
            pairs.append(("airgap fetch (image only)", "docker pull + docker save", 1.0))
        measure(bench, contenders)
        report(bench, size=size, pairs=pairs)
        peak = next(m for m in bench.results if m.name.startswith("airgap")).peak_rss
        verdict = "meets" if peak <= 150 * MIB else "MISSES"
        print(f"airgap peak RSS {peak / MIB:.1f} MiB (target <= 150 MiB: {verdict})")
    finally:
        if engine is not None:
            engine.stop()
        registry.stop()
        finish(bench)


if __name__ == "__main__":
    main()
