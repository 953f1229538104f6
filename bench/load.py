"""The isolated side: ``airgap load`` vs ``docker load -i`` and vs ``skopeo copy``.

Fetches (untimed) a bundle holding a two-platform image of ``--size`` MiB in
``--layers`` shared layers, makes (untimed, with skopeo) the ``docker save``-style
archive an operator would carry instead, then times:

- ``docker load -i ARCHIVE`` vs ``airgap load --docker`` (into our own dockerd, vfs
  storage; the image is removed before each run). ``docker load -i`` of the tar
  ``airgap export-image`` writes (the very stream ``load --docker`` sends) is timed too,
  for context: the engine takes it at its own speed, unlike the ``docker save``-style
  archive with uncompressed layers. airgap streams the archive from the bundle's blobs,
  so it carries no tar; it is timed both as operators run it (the whole bundle verified
  meanwhile, every file hashed, the stream's last chunk held until it passes) and with
  ``--skip-verify`` (blob digests still checked on the way);
- ``skopeo copy --all oci:BUNDLE/images:TAG docker://…`` vs ``airgap load --registry``
  (every platform and the index, into a loopback docker-registry emptied before each run).

Targets: airgap load --docker <= 1.1 x docker load; airgap load --registry <= 1.0 x skopeo.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess

from common import (
    AIRGAP,
    MIB,
    Contender,
    finish,
    image_only_manifest,
    measure,
    parse_args,
    report,
    run_once,
)

from tests.peers.gpgkeys import SigningKey
from tests.peers.images import build_test_image, push_image
from tests.peers.processes import Dockerd, DockerRegistry

REPOSITORY = "package-registry/distribution"
TAG = "9.0.0"
REFERENCE = f"docker.elastic.co/{REPOSITORY}:{TAG}"


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=1024, help="MiB of shared layer data")
    parser.add_argument("--layers", type=int, default=4, help="shared layers")


def main() -> None:
    bench, args = parse_args("load", __doc__ or "", options)
    work = bench.workdir
    source = DockerRegistry(work / "source").start()
    target = DockerRegistry(work / "target")
    engine = Dockerd().start()
    # The isolated side trusts the image only through the operator's signature.
    operator = SigningKey("bench operator", "ops@bench.test")
    trust = ["--trust-key", str(operator.export_public(work / "ops.asc"))]
    try:
        print(f"building, pushing and fetching a {args.size} MiB image (untimed) ...",
              flush=True)
        image = build_test_image(work / "image", tag=TAG,
                                 shared_layers=(args.size * MIB // args.layers,) * args.layers)
        push_image(image, source.host, REPOSITORY)
        shutil.rmtree(work / "image")
        manifest = image_only_manifest(work / "image.yaml", source.url, tag=TAG)
        bundle = work / "bundle"
        run_once([*AIRGAP, "fetch", str(manifest), "-o", str(bundle), "--quiet",
                  "--sign-with", operator.fingerprint, "--gnupg-home", str(operator.home)])
        source.stop()
        archive = work / "image.tar"
        run_once(["skopeo", "copy", "--quiet", "--override-arch", "amd64",
                  f"oci:{bundle}/images:{TAG}", f"docker-archive:{archive}:{REFERENCE}"])
        size = archive.stat().st_size
        # The same image as airgap streams it (OCI layout, gzip layers), for context: the
        # engine's own speed depends on the archive it is given.
        ours = work / "export-image.tar"
        run_once([*AIRGAP, "export-image", str(bundle), "--platform", "linux/amd64",
                  "-o", str(ours), *trust, "--quiet"])

        env = engine.env()

        def no_image() -> None:
            subprocess.run(["docker", "image", "rm", "--force", REFERENCE], env=env,
                           capture_output=True, check=False)

        measure(bench, [
            Contender("docker load -i", ["docker", "load", "-i", str(archive)], env=env,
                      before=no_image, note="1 platform"),
            Contender("docker load -i (export-image tar)",
                      ["docker", "load", "-i", str(ours)], env=env, before=no_image,
                      note="airgap's stream, as a file"),
            Contender("airgap load --docker",
                      [*AIRGAP, "load", str(bundle), "--docker", "--platform", "linux/amd64",
                       *trust, "--quiet"], env=env, before=no_image,
                      note="bundle verified meanwhile"),
            Contender("airgap load --docker --skip-verify",
                      [*AIRGAP, "load", str(bundle), "--docker", "--platform", "linux/amd64",
                       "--skip-verify", "--quiet"], env=env, before=no_image),
        ])

        def empty_registry() -> None:
            target.stop()
            shutil.rmtree(target.workdir / "storage", ignore_errors=True)
            target.start()

        destination = f"{target.host}/mirror/distribution:{TAG}"
        measure(bench, [
            Contender("skopeo copy --all oci: docker://",
                      ["skopeo", "copy", "--all", "--quiet", "--dest-tls-verify=false",
                       f"oci:{bundle}/images:{TAG}", f"docker://{destination}"],
                      before=empty_registry, note="2 platforms"),
            Contender("airgap load --registry",
                      [*AIRGAP, "load", str(bundle), "--registry", f"{target.host}/mirror",
                       "--insecure", *trust, "--quiet"], before=empty_registry,
                      note="2 platforms, bundle verified first"),
            Contender("airgap load --registry --skip-verify",
                      [*AIRGAP, "load", str(bundle), "--registry", f"{target.host}/mirror",
                       "--insecure", "--skip-verify", "--quiet"], before=empty_registry),
        ])
        report(bench, size=size, pairs=[
            ("airgap load --docker", "docker load -i", 1.1),
            ("airgap load --docker --skip-verify", "docker load -i", 1.1),
            ("airgap load --registry", "skopeo copy --all oci: docker://", 1.0),
            ("airgap load --registry --skip-verify", "skopeo copy --all oci: docker://", 1.0),
        ])
    finally:
        target.stop()
        source.stop()
        engine.stop()
        operator.close()
        finish(bench)


if __name__ == "__main__":
    main()
