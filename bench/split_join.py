"""Volumes: ``airgap split`` + ``airgap join`` vs ``split -b`` + ``cat`` + ``sha512sum -c``.

Fetches (untimed) a bundle of ``--size`` MiB from the loopback stand-ins (a two-platform
registry image with large shared layers, agent and beats binaries), then times, on the
same bundle and a warm page cache, the round trip through volumes of ``--volume`` MiB:

- the way it is done by hand: ``tar -cf - bundle | split -b SIZE`` into parts, then
  ``cat parts/* | tar -xf -`` and ``sha512sum -c SHA512SUMS`` in the joined bundle (no
  part is checked before the end, and nothing says which part was damaged);
- the same with a ``sync`` after the split and after the ``tar -xf``: the parts and the
  joined files on the disk before the next step trusts them, as airgap's are;
- ``airgap split --size SIZE`` then ``airgap join parts/*``: every file read once while
  its pieces are written and hashed, each piece checked against the index as it is
  joined, and the joined bundle verified as any bundle (every file's SHA-512, image
  digest and OpenPGP signature; the digests of a file joined whole taken from the bytes
  the join wrote), every piece and file fsynced.

Target: airgap no slower than the peer that syncs (ratio <= 1.0).
"""

from __future__ import annotations

import argparse
import shlex

from common import (
    AIRGAP,
    MIB,
    Contender,
    finish,
    measure,
    parse_args,
    remove,
    report,
    run_once,
    tree_size,
)

from tests.peers.site import LoopbackElastic


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=1024, help="MiB of bundle, about")
    parser.add_argument("--volume", type=int, default=256, help="MiB per volume")


def main() -> None:
    bench, args = parse_args("split + join", __doc__ or "", options)
    work = bench.workdir
    image_mib = args.size * 3 // 4
    site = LoopbackElastic(work / "peers",
                           shared_layers=(image_mib * MIB // 3,) * 3).start()
    try:
        manifest = work / "bundle.yaml"
        manifest.write_text(site.manifest_text(integrations=("system", "fleet_server")))
        print(f"publishing and fetching a bundle of about {args.size} MiB (untimed) ...",
              flush=True)
        site.publish_plan(manifest, artifact_size=(args.size - image_mib) * MIB // 6)
        bundle = work / "bundle"
        run_once([*AIRGAP, "fetch", str(manifest), "-o", str(bundle), "--quiet"])
        size = tree_size(bundle)
        print(f"bundle: {size / MIB:,.0f} MiB; volumes of {args.volume} MiB", flush=True)

        airgap = " ".join(shlex.quote(a) for a in AIRGAP)
        peer_parts, peer_joined = work / "peer-parts", work / "peer-joined"
        parts, joined = work / "parts", work / "joined"
        def by_hand(sync: str) -> list[str]:
            return ["sh", "-c", f"mkdir -p {peer_parts} {peer_joined} && "
                    f"tar -C {work} -cf - bundle | split -b {args.volume}M - "
                    f"{peer_parts}/bundle.tar. {sync}&& "
                    f"cat {peer_parts}/bundle.tar.* | tar -C {peer_joined} -xf - {sync}&& "
                    f"cd {peer_joined}/bundle && sha512sum --quiet -c SHA512SUMS"]

        ours = (f"{airgap} split {bundle} -o {parts} --size {args.volume}MiB --quiet && "
                f"{airgap} join {parts}/* -o {joined} --quiet")
        measure(bench, [
            Contender("split -b, cat, sha512sum -c", by_hand(""),
                      before=remove(peer_parts, peer_joined), note="tar | split; cat | tar"),
            Contender("the same, with sync", by_hand("&& sync "),
                      before=remove(peer_parts, peer_joined), note="sync after each"),
            Contender("airgap split + join", ["sh", "-c", ours], before=remove(parts, joined),
                      note="join verifies the bundle"),
        ])
        report(bench, size=size, pairs=[("airgap split + join", "the same, with sync", 1.0),
                                        ("airgap split + join",
                                         "split -b, cat, sha512sum -c", 1.0)])
    finally:
        site.stop()
        finish(bench)


if __name__ == "__main__":
    main()
