"""The ``airgap`` commands: each parses its options, builds a settings object, calls one
function and renders its result.

Each command imports the modules it runs when it runs: plan, fetch, load and serve bring
in YAML, httpx, the Docker client or aiohttp, which would triple the start-up of verify,
inspect and export-image (work an operator repeats on the isolated side), and no command
pays for another's modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from airgap.cli import options, render, reporters
from airgap.cli.carrying import verify_volume
from airgap.cli.group import (
    begin,
    cli,
    emit,
    interruption_says,
    json_option,
    reporting,
    show_report,
)
from airgap.errors import ExitCode, VerificationError

if TYPE_CHECKING:
    from airgap.load.run import LoadSettings


@cli.command(short_help="Show what a fetch of MANIFEST would get, and why.")
@click.argument("manifest", type=options.MANIFEST)
@click.option("--check", is_flag=True,
              help="Also ask every source now (servers, image platforms, integrations, "
                   "every binary) and show the sizes and the total; downloads nothing.")
@options.ca_cert
@options.jobs
@json_option
def plan(manifest: Path, check: bool, ca_cert: Path | None, jobs: int,
         as_json: bool) -> None:
    """Show everything a fetch of MANIFEST would get, and why; with --check, whether the
    sources have it all, and how large it is."""
    from airgap.manifest import load_manifest, make_plan

    session = begin("plan", as_json)
    result = make_plan(load_manifest(manifest))
    checked = None
    if check:
        from airgap.fetch.preflight import check_plan

        with reporting(session, quiet=False) as reporter:
            checked = check_plan(result, ca_cert, jobs, reporter)
    if session.json:
        emit(session, {**result.to_dict(),
                        **({"check": checked.to_dict()} if checked is not None else {})})
    else:
        render.render_plan(result, checked)


@cli.command("fetch", short_help="Download and verify what MANIFEST plans into a bundle.")
@click.argument("manifest", type=options.MANIFEST)
@click.option("--output", "-o", "bundle", type=options.DIR, required=True,
              help="The bundle folder: new or empty, or a bundle to bring up to date (it "
                   "stays complete if the fetch fails).")
@options.jobs
@options.ca_cert
@click.option("--sign-with", metavar="KEYID",
              help="Sign SHA512SUMS with this OpenPGP key (from --gnupg-home).")
@click.option("--gnupg-home", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="The GnuPG home holding the --sign-with key.")
@click.option("--with-tool", type=options.DIR, metavar="WHEELHOUSE",
              help="Carry airgap itself: the folder `make wheelhouse` wrote, into tools/.")
@click.option("--passphrase-file", type=options.FILE,
              help="A file whose first line is the --sign-with key's passphrase, for "
                   "scripts (at a terminal, gpg-agent asks; CI may set "
                   "AIRGAP_SIGN_PASSPHRASE).")
@click.option("--since", type=options.BUNDLE, metavar="BASE",
              help="Write a delta: only what the bundle BASE (or its bundle.json and "
                   "SHA512SUMS) does not hold.")
@options.quiet
@json_option
def fetch_command(manifest: Path, bundle: Path, jobs: int, ca_cert: Path | None,
                  sign_with: str | None, gnupg_home: Path | None, with_tool: Path | None,
                  passphrase_file: Path | None, since: Path | None, quiet: bool,
                  as_json: bool) -> None:
    """Download and verify everything MANIFEST plans into one bundle folder. Every source
    is asked first; an interrupted fetch resumes when run again."""
    from airgap.fetch.run import FetchSettings, fetch, what_is_left

    session = begin("fetch", as_json)
    settings = FetchSettings(manifest=manifest, bundle=bundle, jobs=jobs, ca_cert=ca_cert,
                             sign_with=sign_with, gnupg_home=gnupg_home, with_tool=with_tool,
                             passphrase_file=passphrase_file, since=since)
    with interruption_says(session, lambda: what_is_left(bundle), counts=True), \
            reporting(session, quiet) as reporter:
        result = fetch(settings, reporter)
    if session.json:
        emit(session, result.to_dict())
    else:
        render.render_fetch(result)


@cli.command("export-image", short_help="Write one platform of BUNDLE's image as a tar "
                                         "for docker load.")
@click.argument("bundle", type=options.BUNDLE)
@options.platform("The platform to write: linux/amd64, arm64, linux/arm64/v8 ... "
                  "(default: this machine's).")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The tar file to write (replaced whole, or not at all).")
@options.tags("Another name to give the image in the tar")
@click.option("--image", metavar="NAME",
              help="Which of BUNDLE's images (default: the package registry's).")
@click.option("--skip-verify", is_flag=True,
              help="Do not verify the bundle first (unsafe: whatever it holds is written).")
@options.trust_keys
@options.trust_signers
@options.quiet
def export_image_command(bundle: Path, platform: str | None, output: Path,
                         tags: tuple[str, ...], image: str | None, skip_verify: bool,
                         trust_keys: tuple[Path, ...], trust_signers: tuple[Path, ...],
                         quiet: bool) -> None:
    """Verify BUNDLE, then write one platform of one of its images as a tar for
    `docker load -i`, for a machine without airgap."""
    from airgap.bundle.verify import BundleRefused
    from airgap.load.export import ExportSettings, export

    session = begin("export-image", on_interrupt=f"no tar was written to {output}")
    settings = ExportSettings(bundle=bundle, output=output, platform=platform, tags=tags,
                              image=image, skip_verify=skip_verify, trust_keys=trust_keys,
                              trust_signers=trust_signers)
    try:
        with reporting(session, quiet) as reporter:
            reporter.info(f"export-image {bundle} to {output}: "
                          + ("" if skip_verify else "verify it, then ")
                          + f"write {image or 'the package registry'!s} for "
                          + (platform or "this machine's platform"))
            result = export(settings, reporter)
    except BundleRefused as refused:
        render.render_verify(refused.report)
        raise
    render.render_export(result)


@cli.command("verify", short_help="Prove that BUNDLE is intact, offline.")
@click.argument("bundle", type=options.BUNDLE)
@options.trust_keys
@options.trust_signers
@options.jobs_verify
@json_option
@options.quiet
def verify_command(bundle: Path, trust_keys: tuple[Path, ...], trust_signers: tuple[Path, ...],
                   jobs: int, as_json: bool, quiet: bool) -> None:
    """Prove that BUNDLE is intact (every file, checksum and signature, offline) and that
    a key from outside it vouches for every file. BUNDLE may be a delta, or one volume of
    a split bundle (checked alone)."""
    from airgap.bundle.verify import VerifySettings, verify_bundle
    from airgap.carry.index import INDEX

    session = begin("verify", as_json)
    if (bundle / INDEX).exists():
        verify_volume(session, bundle, trust_keys, jobs, quiet)
        return
    settings = VerifySettings(bundle=bundle, trust_keys=trust_keys,
                              trust_signers=trust_signers, jobs=jobs)
    with reporting(session, quiet) as reporter:
        reporter.info(f"verify {bundle}: every file against SHA512SUMS, and the signatures "
                      "that vouch for them, offline")
        report = verify_bundle(settings, reporter)
    failed = VerificationError(f"{bundle} failed verification: {len(report.problems)} "
                               "problem(s)")
    show_report(session, report, ExitCode.OK if report.ok else failed.exit_code,
                render.render_verify)
    if not report.ok:
        raise failed


@cli.command("inspect", short_help="Show what BUNDLE holds (nothing re-hashed).")
@click.argument("bundle", type=options.BUNDLE)
@json_option
def inspect_command(bundle: Path, as_json: bool) -> None:
    """Show what BUNDLE holds, from its bundle.json (run verify to check it)."""
    from airgap.bundle.inspect import describe_bundle

    session = begin("inspect", as_json)
    contents = describe_bundle(bundle)
    if session.json:
        emit(session, contents.to_dict())
    else:
        render.render_contents(contents)


@cli.command("load", short_help="Verify BUNDLE, then load, push, run and lay it out.")
@click.argument("bundle", type=options.BUNDLE)
@click.option("--skip-verify", is_flag=True,
              help="Do not verify the bundle first (unsafe: whatever it holds is loaded).")
@options.trust_keys
@options.trust_signers
@click.option("--docker", is_flag=True, help="Load the image into the engine at DOCKER_HOST.")
@options.platform("The platform to load: linux/amd64, arm64, linux/arm64/v8 ... "
                  "(default: the engine's).")
@click.option("--image", "images", multiple=True, metavar="NAME",
              help="Load and push only this image (repeatable; default: every image).")
@options.tags("Another name to give the (first) loaded image")
@click.option("--registry", metavar="[http://|https://]HOST[:PORT][/NAMESPACE]",
              help="Push every platform and the index to this registry (https://, or "
                   "http:// with --insecure).")
@click.option("--insecure", is_flag=True,
              help="Allow plain HTTP or an unverified certificate for --registry.")
@click.option("--ca-cert", type=options.FILE,
              help="PEM file of CAs to trust for --registry (besides the system's); with "
                   "--config, written as ca.pem for Kibana, and as Elastic Defend's ca_cert "
                   "for an HTTPS mirror.")
@click.option("--run", is_flag=True,
              help="Start the package registry container, and check it answers from here.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="Port the package registry listens on (on this host).")
@click.option("--name", default="package-registry", show_default=True,
              help="Name of the package registry container.")
@click.option("--network", help="Container network (host, where the engine has no bridge).")
@click.option("--tls-cert", type=options.FILE,
              help="Serve the registry over HTTPS with this certificate (mounted read-only).")
@click.option("--tls-key", type=options.FILE,
              help="The private key of --tls-cert (readable by uid 1000, the registry's user).")
@click.option("--tls-min-version", type=click.Choice(["1.0", "1.1", "1.2", "1.3"]),
              help="The oldest TLS version the registry accepts (needs --tls-cert).")
@click.option("--restart", type=click.Choice(["no", "always", "unless-stopped", "on-failure"]),
              default="unless-stopped", show_default=True, help="Container restart policy.")
@click.option("--replace", is_flag=True,
              help="Replace a container of the same name (put back if the new one fails).")
@click.option("--artifacts", "artifacts_dir", type=options.DIR,
              help="Put a copy of the downloads/ tree here, with Elastic Defend's "
                   "security/downloads/ (reflinks where the file system has them), ready to "
                   "serve as the agent binary source.")
@click.option("--hard-link", is_flag=True,
              help="With --artifacts: hard-link the files to the bundle's instead of "
                   "copying them. No extra space, but the served files and the bundle's are "
                   "then the same files: a change on either side changes both.")
@click.option("--config", "config_dir", type=options.DIR,
              help="Write kibana.yml, Fleet Server and agent settings here, from what "
              "bundle.json says (so it needs --trust-key).")
@click.option("--registry-url",
              help="The package registry URL Kibana will use (for --config).")
@click.option("--artifacts-url", help="The agent binary source URL (for --config).")
@click.option("--defend-url", help="Elastic Defend's artifact mirror, the server's root "
              "(for --config; default: --artifacts-url without downloads/).")
@click.option("--pin-packages/--no-pin-packages", default=None,
              help="Pin Kibana to the bundle's package versions (for --config; default: "
                   "for a tailored registry).")
@options.jobs
@options.quiet
@json_option
def load_command(bundle: Path, skip_verify: bool, trust_keys: tuple[Path, ...],
                 trust_signers: tuple[Path, ...], docker: bool,
                 platform: str | None, images: tuple[str, ...], tags: tuple[str, ...],
                 registry: str | None,
                 insecure: bool, ca_cert: Path | None, run: bool, port: int, name: str,
                 network: str | None, tls_cert: Path | None, tls_key: Path | None,
                 tls_min_version: str | None, restart: str, replace: bool,
                 artifacts_dir: Path | None, hard_link: bool, config_dir: Path | None,
                 registry_url: str | None, artifacts_url: str | None,
                 defend_url: str | None, pin_packages: bool | None, jobs: int,
                 quiet: bool, as_json: bool) -> None:
    """Verify BUNDLE, then load, push, run and lay it out on the isolated side. Every
    option is checked before the bundle is verified."""
    from airgap.bundle.verify import BundleRefused
    from airgap.load.container import RunSettings
    from airgap.load.run import LoadSettings, load

    session = begin("load", as_json, "run the same command again: what is already "
                     "loaded, pushed or laid out is kept")
    settings = LoadSettings(
        bundle=bundle, skip_verify=skip_verify, trust_keys=trust_keys,
        trust_signers=trust_signers, docker=docker,
        platform=platform, tags=tags, registry=registry, insecure=insecure, ca_cert=ca_cert,
        run=run, run_settings=RunSettings(port=port, name=name, network=network,
                                          tls_cert=tls_cert, tls_key=tls_key,
                                          tls_min_version=tls_min_version, restart=restart,
                                          replace=replace),
        artifacts_dir=artifacts_dir, hard_link=hard_link, config_dir=config_dir,
        registry_url=registry_url, artifacts_url=artifacts_url, jobs=jobs, images=images,
        pin_packages=pin_packages, defend_url=defend_url)
    try:
        with reporting(session, quiet) as reporter:
            reporter.info(_load_start(settings))
            result = load(settings, reporter)
    except BundleRefused as refused:
        show_report(session, refused.report, refused.exit_code, render.render_verify)
        raise
    if session.json:
        emit(session, result.to_dict(), warnings=result.warnings())
    else:
        render.render_load(result)


def _load_start(settings: LoadSettings) -> str:
    """The first line of a load: what it will do, in order."""
    steps = [] if settings.skip_verify else ["verify it"]
    platform = settings.platform or "this machine's platform"
    if settings.docker:
        steps.append(f"docker load ({platform})")
    if settings.registry:
        steps.append(f"push to {settings.registry}")
    if settings.run:
        steps.append(f"run {settings.run_settings.name} on port {settings.run_settings.port}")
    if settings.artifacts_dir:
        steps.append(f"lay out the binaries in {settings.artifacts_dir}")
    if settings.config_dir:
        steps.append(f"write the Fleet settings to {settings.config_dir}")
    return f"load {settings.bundle}: " + (", then ".join(steps) or "nothing asked")


@cli.command("serve", short_help="Serve a downloads/ tree as the agents' binary source.")
@click.argument("root", type=options.BUNDLE, metavar="DIR_OR_BUNDLE")
@click.option("--skip-verify", is_flag=True,
              help="Do not verify BUNDLE first (unsafe: whatever it holds is served).")
@options.trust_keys
@options.trust_signers
@click.option("--bind", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--tls-cert", type=options.FILE, help="PEM certificate (chain) to serve HTTPS with.")
@click.option("--tls-key", type=options.FILE, help="PEM private key of --tls-cert.")
@click.option("--tls-min-version", type=click.Choice(["1.0", "1.1", "1.2", "1.3"]),
              help="The oldest TLS version accepted (default 1.2; needs --tls-cert).")
@click.option("--max-connections", type=click.IntRange(1), metavar="N",
              help="Connections open at once (default: as many as the open-file limit "
                   "allows, at most 4096); at the cap, one waiting for its request makes room.")
@click.option("--header-timeout", type=click.FloatRange(0.1), default=10.0, show_default=True,
              metavar="SECONDS", help="Time a client has to send its request headers (and "
                                      "a TLS handshake).")
@click.option("--keepalive-timeout", type=click.FloatRange(0.1), default=15.0,
              show_default=True, metavar="SECONDS",
              help="Time an idle connection is kept open between requests.")
@click.option("--send-timeout", type=click.FloatRange(0.1), default=60.0, show_default=True,
              metavar="SECONDS", help="Time a client may take none of its answer (it stopped "
                                      "reading) before its connection is cut off.")
@options.quiet
def serve_command(root: Path, skip_verify: bool, trust_keys: tuple[Path, ...],
                  trust_signers: tuple[Path, ...], bind: str, port: int, tls_cert: Path | None,
                  tls_key: Path | None, tls_min_version: str | None, max_connections: int | None,
                  header_timeout: float, keepalive_timeout: float, send_timeout: float,
                  quiet: bool) -> None:
    """Serve a bundle's downloads/ tree and Elastic Defend's security/downloads/ (or a
    tree load --artifacts laid out) as the agents' binary source, until Ctrl-C or SIGTERM.
    A bundle is verified first, as load --artifacts does."""
    from airgap.bundle.verify import BundleRefused
    from airgap.load.connections import Limits
    from airgap.load.serve import ServeSettings, run_server

    begin("serve")
    settings = ServeSettings(root=root, bind=bind, port=port, tls_cert=tls_cert,
                             tls_key=tls_key, tls_min_version=tls_min_version,
                             limits=Limits(max_connections, header_timeout, keepalive_timeout,
                                           send_timeout),
                             skip_verify=skip_verify, trust_keys=trust_keys,
                             trust_signers=trust_signers)
    try:
        run_server(settings, reporters.service_reporter(quiet),
                   access_log=None if quiet else reporters.access_logger())
    except BundleRefused as refused:
        render.render_verify(refused.report)
        raise
