"""The ``airgap`` commands: each parses its options, builds a settings object, calls one
function and renders its result."""

from __future__ import annotations

from pathlib import Path

import click

from airgap import __version__
from airgap.cli import options, progress, render
from airgap.errors import VerificationError
from airgap.reporter import NullReporter

# Each command imports the modules it runs when it runs: plan, fetch, load and serve
# bring in YAML, httpx, the Docker client or aiohttp, which would triple the start-up of
# verify, inspect and export-image (work an operator repeats on the isolated side), and
# no command pays for another's modules.



@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="airgap")
def cli() -> None:
    """Carry the Elastic package registry, agent binaries and integration packages
    into a network with no internet access, verified end to end."""


@cli.command()
@click.argument("manifest", type=options.MANIFEST)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(manifest: Path, as_json: bool) -> None:
    """Show everything a fetch of MANIFEST would get, and why."""
    from airgap.manifest import load_manifest, make_plan

    result = make_plan(load_manifest(manifest))
    if as_json:
        render.print_json(result.to_dict())
    else:
        render.render_plan(result)


@cli.command("fetch")
@click.argument("manifest", type=options.MANIFEST)
@click.option("--output", "-o", "bundle", type=options.DIR, required=True,
              help="The bundle directory to write (created, or completed if it exists).")
@options.jobs
@options.ca_cert
@click.option("--sign-with", metavar="KEYID", help="Sign SHA512SUMS with this OpenPGP key.")
@click.option("--gnupg-home", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="The GnuPG home holding the --sign-with key.")
@click.option("--since", type=options.BUNDLE, metavar="BASE",
              help="Write a delta: only what the bundle BASE (or its bundle.json and "
                   "SHA512SUMS) does not hold.")
@options.quiet
def fetch_command(manifest: Path, bundle: Path, jobs: int, ca_cert: Path | None,
                  sign_with: str | None, gnupg_home: Path | None, since: Path | None,
                  quiet: bool) -> None:
    """Download and verify everything MANIFEST plans into one bundle directory."""
    from airgap.fetch.run import FetchSettings, fetch

    settings = FetchSettings(manifest=manifest, bundle=bundle, jobs=jobs, ca_cert=ca_cert,
                             sign_with=sign_with, gnupg_home=gnupg_home, since=since)
    with progress.make_reporter(quiet) as reporter:
        result = fetch(settings, reporter)
    render.render_fetch(result)


@cli.command("export-image")
@click.argument("bundle", type=options.BUNDLE)
@click.option("--platform", help="linux/amd64 or linux/arm64 (default: this machine's).")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The tar file to write.")
@click.option("--tag", "tags", multiple=True, help="Another name to give the image (repeatable).")
def export_image_command(bundle: Path, platform: str | None, output: Path,
                         tags: tuple[str, ...]) -> None:
    """Write one platform of BUNDLE's image as a tar for `docker load -i`."""
    from airgap.load.export import export_image

    result = export_image(bundle, platform, output, tags)
    render.stdout.print(f"wrote {result.path}: {result.reference} ({result.platform}), "
                    f"{result.size} bytes; load it with: docker load -i {result.path}")


@cli.command("verify")
@click.argument("bundle", type=options.BUNDLE)
@options.trust_keys
@options.jobs_verify
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@options.quiet
def verify_command(bundle: Path, trust_keys: tuple[Path, ...], jobs: int, as_json: bool,
                   quiet: bool) -> None:
    """Prove that BUNDLE is intact: every file, checksum and signature, offline. BUNDLE
    may be a delta, or one volume of a split bundle."""
    from airgap.bundle.verify import VerifySettings, verify_bundle
    from airgap.carry.index import INDEX

    if (bundle / INDEX).exists():
        _verify_volume(bundle, trust_keys, jobs, as_json, quiet)
        return
    settings = VerifySettings(bundle=bundle, trust_keys=trust_keys, jobs=jobs)
    with progress.make_reporter(quiet or as_json) as reporter:
        report = verify_bundle(settings, reporter)
    if as_json:
        render.print_json(report.to_dict())
    else:
        render.render_verify(report)
    if not report.ok:
        raise VerificationError(f"{bundle} failed verification: {len(report.problems)} "
                                "problem(s)")


@cli.command("inspect")
@click.argument("bundle", type=options.BUNDLE)
@click.option("--json", "as_json", is_flag=True, help="Print the contents as JSON.")
def inspect_command(bundle: Path, as_json: bool) -> None:
    """Show what BUNDLE holds (from its bundle.json; run verify to check it)."""
    from airgap.bundle.inspect import describe_bundle

    contents = describe_bundle(bundle)
    if as_json:
        render.print_json(contents.to_dict())
    else:
        render.render_contents(contents)


@cli.command("load")
@click.argument("bundle", type=options.BUNDLE)
@click.option("--skip-verify", is_flag=True, help="Do not verify the bundle first (unsafe).")
@options.trust_keys
@click.option("--docker", is_flag=True, help="Load the image into the engine at DOCKER_HOST.")
@click.option("--platform", help="Image platform to load (default: the engine's).")
@click.option("--tag", "tags", multiple=True, help="Another name for the loaded image.")
@click.option("--registry", metavar="HOST[:PORT][/NAMESPACE]",
              help="Push every platform and the index to this registry.")
@click.option("--insecure", is_flag=True, help="Allow plain HTTP or unverified TLS to --registry.")
@options.ca_cert
@click.option("--run", is_flag=True, help="Start the package registry container.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="Port the package registry listens on.")
@click.option("--name", default="package-registry", show_default=True,
              help="Container name.")
@click.option("--network", help="Container network (host where the engine has no bridge).")
@click.option("--tls-cert", type=options.FILE, help="Serve the registry over HTTPS with this "
              "certificate (mounted read-only).")
@click.option("--tls-key", type=options.FILE, help="The private key of --tls-cert.")
@click.option("--tls-min-version", type=click.Choice(["1.0", "1.1", "1.2", "1.3"]))
@click.option("--restart", type=click.Choice(["no", "always", "unless-stopped", "on-failure"]),
              default="unless-stopped", show_default=True, help="Container restart policy.")
@click.option("--replace", is_flag=True, help="Replace a container of the same name.")
@click.option("--artifacts", "artifacts_dir", type=options.DIR,
              help="Put the downloads/ tree here, ready to serve as the agent binary source.")
@click.option("--config", "config_dir", type=options.DIR,
              help="Write kibana.yml, Fleet Server and agent settings here.")
@click.option("--registry-url", help="The package registry URL Kibana will use (--config).")
@click.option("--artifacts-url", help="The agent binary source URL (--config).")
@options.jobs
@options.quiet
def load_command(bundle: Path, skip_verify: bool, trust_keys: tuple[Path, ...], docker: bool,
                 platform: str | None, tags: tuple[str, ...], registry: str | None,
                 insecure: bool, ca_cert: Path | None, run: bool, port: int, name: str,
                 network: str | None, tls_cert: Path | None, tls_key: Path | None,
                 tls_min_version: str | None, restart: str, replace: bool,
                 artifacts_dir: Path | None, config_dir: Path | None,
                 registry_url: str | None, artifacts_url: str | None, jobs: int,
                 quiet: bool) -> None:
    """Verify BUNDLE, then load, push, run and lay it out on the isolated side."""
    from airgap.load.engine import RunSettings
    from airgap.load.run import BundleRefused, LoadSettings, load

    settings = LoadSettings(
        bundle=bundle, skip_verify=skip_verify, trust_keys=trust_keys, docker=docker,
        platform=platform, tags=tags, registry=registry, insecure=insecure, ca_cert=ca_cert,
        run=run, run_settings=RunSettings(port=port, name=name, network=network,
                                          tls_cert=tls_cert, tls_key=tls_key,
                                          tls_min_version=tls_min_version, restart=restart,
                                          replace=replace),
        artifacts_dir=artifacts_dir, config_dir=config_dir, registry_url=registry_url,
        artifacts_url=artifacts_url, jobs=jobs)
    try:
        with progress.make_reporter(quiet) as reporter:
            result = load(settings, reporter)
    except BundleRefused as refused:
        render.render_verify(refused.report)
        raise
    render.render_load(result)


@cli.command("serve")
@click.argument("root", type=options.BUNDLE, metavar="DIR_ORoptions.BUNDLE")
@click.option("--bind", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--tls-cert", type=options.FILE, help="PEM certificate (chain) to serve HTTPS with.")
@click.option("--tls-key", type=options.FILE, help="PEM private key of --tls-cert.")
@options.quiet
def serve_command(root: Path, bind: str, port: int, tls_cert: Path | None,
                  tls_key: Path | None, quiet: bool) -> None:
    """Serve a bundle's downloads/ tree (or such a tree) as the agents' binary source."""
    from airgap.load.serve import ServeSettings, run_server

    settings = ServeSettings(root=root, bind=bind, port=port, tls_cert=tls_cert,
                             tls_key=tls_key)
    run_server(settings, NullReporter() if quiet else progress.LineReporter(),
               access_log=None if quiet else progress.access_logger())


def _verify_volume(volume: Path, trust_keys: tuple[Path, ...], jobs: int, as_json: bool,
                   quiet: bool) -> None:
    from airgap.carry.check import VolumeSettings, verify_volume

    with progress.make_reporter(quiet or as_json) as reporter:
        report = verify_volume(VolumeSettings(volume, trust_keys, jobs), reporter)
    if as_json:
        render.print_json(report.to_dict())
    else:
        render.render_volume(report)
    if not report.ok:
        raise VerificationError(f"{volume} (volume {report.number} of {report.volumes}) is "
                                f"damaged: {len(report.problems)} problem(s); send it again")


@cli.command("merge")
@click.argument("base", type=options.BUNDLE)
@click.argument("delta", type=options.BUNDLE)
@click.option("--output", "-o", type=options.DIR, required=True,
              help="The new bundle's directory (new or empty).")
@options.trust_keys
@options.jobs_verify
@options.quiet
def merge_command(base: Path, delta: Path, output: Path, trust_keys: tuple[Path, ...],
                  jobs: int, quiet: bool) -> None:
    """Merge DELTA into BASE, the bundle it was made from, as a new complete bundle."""
    from airgap.carry.merge import MergeRefused, MergeSettings, merge

    settings = MergeSettings(base=base, delta=delta, output=output, trust_keys=trust_keys,
                             jobs=jobs)
    try:
        with progress.make_reporter(quiet) as reporter:
            result = merge(settings, reporter)
    except MergeRefused as refused:
        render.render_verify(refused.report)
        raise
    render.render_merge(result)


@cli.command("split")
@click.argument("bundle", type=options.BUNDLE)
@click.option("--output", "-o", type=options.DIR, required=True,
              help="Where the volumes go: OUTPUT/001, OUTPUT/002, ... (new or empty).")
@click.option("--size", metavar="SIZE", required=True, callback=options.size_option,
              help="What one volume holds, everything included: 4.7GB, 700MB, 25GB, ...")
@click.option("--max-file", metavar="SIZE", callback=options.size_option,
              help="The largest file the medium takes (FAT32: 4GiB-1).")
@click.option("--block", metavar="SIZE", default="4KiB", show_default=True,
              callback=options.size_option,
              help="The medium's allocation unit: every file counts in whole blocks.")
@click.option("--sign-with", metavar="KEYID", help="Sign the volumes' index with this key.")
@click.option("--gnupg-home", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="The GnuPG home holding the --sign-with key.")
@options.jobs_verify
@options.quiet
def split_command(bundle: Path, output: Path, size: int, max_file: int | None, block: int,
                  sign_with: str | None, gnupg_home: Path | None, jobs: int,
                  quiet: bool) -> None:
    """Write BUNDLE (a bundle or a delta) as volumes that fit the medium."""
    from airgap.carry.split import SplitSettings, split
    from airgap.carry.volumes import Limits

    settings = SplitSettings(bundle=bundle, output=output,
                             limits=Limits(size=size, block=block, max_file=max_file),
                             sign_with=sign_with, gnupg_home=gnupg_home, jobs=jobs)
    with progress.make_reporter(quiet) as reporter:
        result = split(settings, reporter)
    render.render_split(result)


@cli.command("join")
@click.argument("volumes", type=options.BUNDLE, nargs=-1, required=True)
@click.option("--output", "-o", "bundle", type=options.DIR, required=True,
              help="The bundle's directory (new, or one a join began).")
@click.option("--partial", is_flag=True,
              help="More volumes will come: add these, and wait for the others.")
@options.trust_keys
@options.jobs_verify
@options.quiet
def join_command(volumes: tuple[Path, ...], bundle: Path, partial: bool,
                 trust_keys: tuple[Path, ...], jobs: int, quiet: bool) -> None:
    """Join VOLUME... (in any order, all at once or as they arrive) back into a bundle."""
    from airgap.carry.join import JoinRefused, JoinSettings, join

    settings = JoinSettings(volumes=volumes, bundle=bundle, trust_keys=trust_keys,
                            partial=partial, jobs=jobs)
    try:
        with progress.make_reporter(quiet) as reporter:
            result = join(settings, reporter)
    except JoinRefused as refused:
        render.render_verify(refused.report)
        raise
    render.render_join(result)
