"""``make demo``: airgap's main job end to end, against local stand-ins of Elastic.

Starts a real docker-registry holding a multi-platform stand-in of the package registry
server image (busybox, which checks and reads every package zip and ``.sig`` at start-up
as the real server does) and of the agent image, and stand-ins for artifacts.elastic.co,
epr.elastic.co and artifacts.security.elastic.co on 127.0.0.1. Then, as an operator
would: plan a tailored registry (the server image plus exactly the site's verified
packages), fetch (signing the bundle), verify (trusting the operator's key), show the
image's size beside Elastic's lite and full images, load (into a Docker engine when one
can be reached or started, and run it; plus a push to a private registry, the artifact
registry and the settings), and an agent-style download and a Defend update from
``airgap serve``.
Everything it writes stays in ``.demo/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from tests.peers.gpgkeys import SigningKey  # noqa: E402
from tests.peers.net import free_port, port_open, wait_until  # noqa: E402
from tests.peers.processes import Dockerd  # noqa: E402
from tests.peers.site import LoopbackElastic  # noqa: E402

AGENT = "beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"


def say(message: str) -> None:
    print(f"\ndemo: {message}", flush=True)


def airgap(*args: str, env: dict[str, str] | None = None) -> None:
    """Run one airgap command as a user would, showing it first; stop the demo on failure."""
    print(f"\n$ airgap {shlex.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "airgap", *args], cwd=REPO, env=env,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(f"demo: `airgap {args[0]}` failed with exit code {result.returncode}")


def docker_engine() -> tuple[dict[str, str] | None, Dockerd | None]:
    """An engine to load into: DOCKER_HOST's, or our own dockerd when we may start one."""
    if os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists():
        probe = subprocess.run(["docker", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return dict(os.environ), None
    if os.geteuid() == 0 and shutil.which("dockerd"):
        engine = Dockerd().start()
        return engine.env(), engine
    return None, None


def agent_download(base: str, signer_keyring: Path, workdir: Path) -> None:
    """Fetch an upgrade as Elastic Agent does: the file, its .sha512, its .asc; check both."""
    body = httpx.get(base + AGENT).content
    expected, name = httpx.get(base + AGENT + ".sha512").text.split()
    (workdir / "agent.tar.gz").write_bytes(body)
    (workdir / "agent.tar.gz.asc").write_bytes(httpx.get(base + AGENT + ".asc").content)
    if hashlib.sha512(body).hexdigest() != expected or name != Path(AGENT).name:
        raise SystemExit("demo: the served agent does not match its .sha512")
    check = subprocess.run(["gpgv", "--keyring", str(signer_keyring),
                            str(workdir / "agent.tar.gz.asc"), str(workdir / "agent.tar.gz")],
                           capture_output=True, check=False)
    if check.returncode != 0:
        raise SystemExit("demo: the served agent's signature does not verify")
    print(f"  {len(body)} bytes, SHA-512 matches {name}.sha512, signature good")


def image_sizes(bundle: Path) -> None:
    """The tailored image's size, its parts, beside Elastic's published image sizes."""
    description = json.loads((bundle / "bundle.json").read_text())
    image = description["image"]
    blobs = bundle / "images" / "blobs" / "sha256"

    def size(digests: set[str]) -> int:
        return sum((blobs / d.removeprefix("sha256:")).stat().st_size for d in digests)

    layer = image["tailored"]["layer"]
    own = {image["digest"], *(d for p in image["platforms"].values()
                               for d in (p["manifest"], p["config"], *p["layers"]))}
    base = {d for p in image["platforms"].values() for d in p["layers"]} - {layer}
    count = len(image["tailored"]["packages"])

    def human(count: int) -> str:
        return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.0f} kB"

    print(f"  tailored image (this bundle, {len(image['platforms'])} platforms): "
          f"{human(size(own))} = server image {human(size(base))} + one layer of "
          f"{count} verified packages {human(size({layer}))}")
    print("  Elastic's lite image: a few hundred MB, 16 packages chosen by Elastic "
          "(published)")
    print("  Elastic's full image: about 20 GB at 8.17.2, its packages in one 21.3 GB layer "
          "(published, package-registry #1283 and #1941)")
    print("  (here the server image is a busybox stand-in; Elastic's is tens of MB)")


def registry_read(url: str) -> None:
    """What the running registry read at start-up: every zip and .sig, as uid 1000."""
    listed = httpx.get(f"{url}/packages.txt").text.splitlines()
    uid = httpx.get(f"{url}/whoami.txt").text.strip()
    print(f"  the registry read {len(listed)} files (each zip and its .sig) as uid {uid}")


def defend_update(root: str) -> None:
    """Poll as Elastic Endpoint does: the manifest, then again with its ETag (304)."""
    url = f"{root}downloads/endpoint/manifest/artifacts-9.0.0.zip"
    first = httpx.get(url)
    tag = first.headers.get("etag")
    again = httpx.get(url, headers={"If-None-Match": tag or ""})
    if first.status_code != 200 or not tag or again.status_code != 304:
        raise SystemExit("demo: the Defend manifest is not served with a working ETag")
    print(f"  Defend manifest: {len(first.content)} bytes, ETag {tag}; asked again: 304")


def main() -> None:
    parser = argparse.ArgumentParser(description="airgap's main job end to end, on loopback")
    parser.add_argument("--with-tool", type=Path, metavar="WHEELHOUSE",
                        help="carry this wheelhouse (make wheelhouse) in the bundle")
    options = parser.parse_args()
    workdir = REPO / ".demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    rel = lambda p: str(p.relative_to(REPO))  # noqa: E731
    say("starting loopback stand-ins for docker.elastic.co, artifacts.elastic.co, "
        "epr.elastic.co and artifacts.security.elastic.co")
    site = LoopbackElastic(workdir / "peers").start()
    operator = SigningKey("demo site operator", "operator@example.test")
    engine: Dockerd | None = None
    summary: list[str] = []
    try:
        manifest = workdir / "airgap.yaml"
        manifest.write_text(site.manifest_text(flavor="tailored", images=("elastic-agent",)))
        # Packages of about the size of Elastic's example package zip (351 kB).
        site.publish_plan(manifest, package_size=350_000)
        operator_key = operator.export_public(workdir / "operator.asc")
        print(f"  registry {site.registry.url}, artifacts {site.artifacts.url}, "
              f"EPR {site.epr.url}, Defend {site.defend.url}\n\n{rel(manifest)}:\n"
              f"{manifest.read_text()}")

        say("1. connected side: what will be fetched, and why")
        airgap("plan", rel(manifest))
        say("2. fetch everything into one bundle, signed by the site operator")
        bundle = workdir / "bundle"
        tool = ["--with-tool", str(options.with_tool)] if options.with_tool else []
        airgap("fetch", rel(manifest), "-o", rel(bundle), "--sign-with", operator.fingerprint,
               "--gnupg-home", str(operator.home), *tool)
        summary.append(f"fetched   {rel(bundle)}")
        say("3. after the transfer: prove nothing was lost or altered")
        airgap("verify", rel(bundle), "--trust-key", rel(operator_key))
        airgap("inspect", rel(bundle))
        summary.append("verified  every file, checksum and signature, the operator's, and "
                       "every package in the image")
        say("the size of the package registry image this site needs")
        image_sizes(bundle)

        say("4. isolated side: load")
        env, engine = docker_engine()
        registry_port, serve_port = free_port(), free_port()
        artifacts_url = f"http://127.0.0.1:{serve_port}/downloads/"
        common = ["--trust-key", rel(operator_key), "--artifacts", rel(workdir / "artifacts"),
                  "--config", rel(workdir / "settings"), "--registry-url",
                  f"http://127.0.0.1:{registry_port}", "--artifacts-url", artifacts_url,
                  "--registry", f"{site.registry.host}/private", "--insecure"]
        if env is not None:
            airgap("load", rel(bundle), "--docker", "--run", "--network", "host", "--port",
                   str(registry_port), "--name", "airgap-demo-registry", "--replace", *common,
                   env=env)
            registry_read(f"http://127.0.0.1:{registry_port}")
            summary.append(f"running   the tailored registry at http://127.0.0.1:{registry_port}"
                           " (loaded into Docker, /health answered)")
        else:
            say("no Docker engine can be reached or started: artifacts, settings and the "
                "private registry push only")
            airgap("load", rel(bundle), *common)
        summary.append(f"pushed    to {site.registry.host}/private (the private registry)")
        summary.append(f"laid out  {rel(workdir / 'artifacts')}; settings in "
                       f"{rel(workdir / 'settings')}")

        say("5. the artifact registry: airgap serve, and an agent-style download from it")
        print(f"$ airgap serve {rel(workdir / 'artifacts')} --port {serve_port}")
        server = subprocess.Popen([sys.executable, "-m", "airgap", "serve",
                                   rel(workdir / "artifacts"), "--port", str(serve_port)],
                                  cwd=REPO)
        try:
            wait_until(lambda: port_open(serve_port), 30, "airgap serve listening")
            time.sleep(0.2)
            agent_download(artifacts_url, site.signer.home / "pubring.kbx", workdir)
            defend_update(artifacts_url.removesuffix("downloads/"))
        finally:
            server.terminate()
            server.wait(timeout=10)
        summary.append(f"served    {artifacts_url} (agent download checked; Defend's "
                       "manifest answered 304 to its ETag)")
    finally:
        if engine is not None:
            engine.stop()
        operator.close()
        site.stop()
    say("done. Summary:")
    for line in summary:
        print(f"  {line}")
    print("\neverything it wrote is in .demo/")


if __name__ == "__main__":
    main()
