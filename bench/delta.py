"""Deltas: the bytes ``airgap fetch --since BASE`` carries, against a full bundle.

Fetches (untimed) a base bundle from the loopback stand-ins, a registry image whose
packages layer is ``--image`` MiB and agent and beats binaries of ``--artifact`` MiB each,
then a delta of it for each of three changes, and prints what each delta carries
against the full bundle it makes:

- a new integration added (``endpoint``: its package, the endpoint-security binary and
  Elastic Defend's protection artifacts);
- a stack patch bump (9.0.0 to 9.0.1: a new packages layer, the same platform layers,
  new binaries, the same package versions);
- nothing changed.

Each delta is merged into the base (untimed) to show it makes the full bundle.
Nothing is timed: the figures are bytes, and they scale with Elastic's own sizes (an
elastic-agent archive is hundreds of MB, the lite registry image over a GB).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import AIRGAP, MIB, finish, parse_args, run_once, tree_size

from airgap.manifest import load_manifest
from airgap.manifest.plan import make_plan
from tests.peers.images import build_test_image, push_image
from tests.peers.site import REPOSITORY, LoopbackElastic

BASE = ("system", "nginx", "fleet_server")


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=int, default=256, help="MiB of image package data")
    parser.add_argument("--artifact", type=int, default=32, help="MiB per binary")


def manifest(site: LoopbackElastic, path: Path, artifact_size: int, *,
             version: str = "9.0.0", integrations: tuple[str, ...] = BASE) -> Path:
    """A manifest for the stand-ins, its binaries published (those not published yet)."""
    text = site.manifest_text(integrations=integrations)
    path.write_text(text.replace(f"version: {site.tag}", f"version: {version}"))
    plan = make_plan(load_manifest(path))
    for item in plan.artifacts:
        if not (site.artifacts.root / item.path).exists():  # what is out stays the same
            site.artifacts.publish(item.path, artifact_size)
    known = {p.name for p in site.epr.packages}
    for package in plan.packages:
        if package.name not in known:
            site.epr.add(package.name, "1.0.0")
    for defend in plan.defend:  # Elastic Defend's protection artifacts, with endpoint
        site.defend.publish(defend.endpoint_version, "1.0.42", {
            f"{name}-v1": name.encode() * 20_000
            for name in ("production-rules-linux", "production-rules-windows",
                         "diagnostic-configuration")})
    return path


def main() -> None:
    bench, args = parse_args("delta", __doc__ or "", options)
    size = args.artifact * MIB
    work = bench.workdir
    site = LoopbackElastic(work / "peers", shared_layers=(args.image * MIB,)).start()
    try:
        print("publishing and fetching the base bundle (untimed) ...", flush=True)
        base = work / "base"
        run_once([*AIRGAP, "fetch", str(manifest(site, work / "base.yaml", size)), "-o", str(base),
                  "--quiet"])
        patch = build_test_image(work / "patch-image", tag="9.0.1",
                                 shared_layers=(args.image * MIB,))
        push_image(patch, site.registry.host, REPOSITORY)
        changes = [
            ("a new integration (endpoint)",
             manifest(site, work / "endpoint.yaml", size, integrations=(*BASE, "endpoint"))),
            ("a stack patch bump (9.0.0 to 9.0.1)",
             manifest(site, work / "patch.yaml", size, version="9.0.1")),
            ("nothing changed", work / "base.yaml"),
        ]
        rows = []
        for number, (name, changed) in enumerate(changes):
            delta, new = work / f"delta-{number}", work / f"new-{number}"
            run_once([*AIRGAP, "fetch", str(changed), "-o", str(delta), "--since", str(base),
                      "--quiet"])
            run_once([*AIRGAP, "merge", str(base), str(delta), "-o", str(new), "--quiet"])
            rows.append((name, tree_size(new), tree_size(delta)))
        print(f"\n== delta ==\nbase: {tree_size(base) / MIB:,.1f} MiB; image packages layer "
              f"{args.image} MiB, binaries {args.artifact} MiB each")
        print(f"{'change':<38}{'full bundle MiB':>16}{'delta MiB':>11}{'share':>8}")
        for name, full, carried in rows:
            print(f"{name:<38}{full / MIB:>16,.1f}{carried / MIB:>11,.3f}"
                  f"{carried / full:>8.1%}")
    finally:
        site.stop()
        finish(bench)


if __name__ == "__main__":
    main()
