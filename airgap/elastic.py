"""Everything airgap knows about Elastic's public layout, in one place.

Products and their artifact directories, file names per OS, architecture and format,
where each product ships and from which version, the FIPS builds, the signing key, the
integration -> product table, Elastic Defend's protection artifacts, the container images
Elastic publishes, and which Kibana settings exist from which version; the package
registry's own facts are in :mod:`airgap.package_registry`. Each section names the public
source (Elastic's documentation or code) its facts were read from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from airgap.platforms import ARCHITECTURES

# -- the signing key ----------------------------------------------------------------------
# Elastic's "Verify Elastic's signatures" documentation and the key in
# elastic/package-registry cmd/distribution/GPG-KEY-elasticsearch (SHA-256 self-signatures).

ELASTIC_KEY_FINGERPRINT = "46095ACC8548582C1A2699A9D27D666CD88E42B4"
ELASTIC_KEY_FILENAME = "GPG-KEY-elasticsearch.asc"

# -- public endpoints ----------------------------------------------------------------------

DEFAULT_REGISTRY_URL = "https://docker.elastic.co"
DEFAULT_ARTIFACTS_URL = "https://artifacts.elastic.co/downloads/"
DEFAULT_EPR_URL = "https://epr.elastic.co/"
DEFAULT_REGISTRY_IMAGE = "docker.elastic.co/package-registry/distribution"
#: Elastic Defend's global protection artifacts (the "offline endpoints" documentation).
DEFAULT_SECURITY_URL = "https://artifacts.security.elastic.co/"

# -- platforms -----------------------------------------------------------------------------

OS_NAMES = ("linux", "windows", "darwin")
ARCH_NAMES = tuple(a.elastic for a in ARCHITECTURES)
#: Other names of those architectures (``amd64``), as the manifest accepts them.
ARCH_ALIASES = {name: a.elastic for a in ARCHITECTURES for name in (a.oci, *a.aliases)
                if name != a.elastic}
#: ``archive`` is a .tar.gz (a .zip on windows); ``msi`` the Windows installer;
#: ``docker-image`` the image tarball Elastic publishes beside the binaries.
FORMATS = ("archive", "deb", "rpm", "msi", "docker-image")
#: The one operating system each format other than ``archive`` exists for.
FORMAT_OS = {"deb": "linux", "rpm": "linux", "docker-image": "linux", "msi": "windows"}
FLAVORS = ("full", "lite", "tailored")
VARIANTS = ("ubi", "fips")
#: macOS builds for both CPUs in one file (elastic-agent's artifact.go names the suffix
#: ``darwin-universal.tar.gz``); a pseudo-architecture of darwin only.
UNIVERSAL = "universal"

#: The OCI platform of the registry image for each manifest architecture (the image is
#: built for linux/amd64 and linux/arm64: elastic/package-registry's Dockerfile and CI).
IMAGE_PLATFORMS = {a.elastic: f"linux/{a.oci}" for a in ARCHITECTURES}

Platform = tuple[str, str]  # (os, arch), arch canonical: x86_64 | arm64 | universal

_ALL: frozenset[Platform] = frozenset(
    {("linux", "x86_64"), ("linux", "arm64"), ("windows", "x86_64"),
     ("darwin", "x86_64"), ("darwin", "arm64")}
)
_LINUX: frozenset[Platform] = frozenset({("linux", "x86_64"), ("linux", "arm64")})
_APM: frozenset[Platform] = frozenset(
    {("linux", "x86_64"), ("linux", "arm64"), ("windows", "x86_64"), ("darwin", "x86_64")}
)
_BEATS_FORMATS = frozenset({"archive", "deb", "rpm", "msi", "docker-image"})
_PACKAGED = frozenset({"archive", "deb", "rpm"})
_ARCHIVE = frozenset({"archive"})

# Version gates, from Elastic's code, release notes and documentation (docs/manifest.md
# "What is left out" has the sources and what is not known). A gate that the
# sources do not settle plans nothing: a file planned that is not published fails the fetch.
# - windows/arm64: elastic-agent's zip from 9.3.2 (its release notes: "Elastic Agent for
#   Windows on ARM64 is now available in technical preview"; GA with 9.5.0, kibana PR
#   #288255); fleet-server's from 9.5.0 (fleet-server's magefile at v9.5.0 builds it, the
#   9.3 and 9.4 backports of #6957 were reverted, #7313/#7314; the agent's 9.5.0 release
#   notes: "Include fleet-server in windows/arm64 packages", #14120). endpoint-security:
#   the agent's windows/arm64 package carries Elastic Defend, but no source shows a
#   standalone endpoint-security-<v>-windows-arm64.zip (only 7.x agents fetched it apart).
# - FIPS builds: "FIPS mode for Ingest tools" (elastic/docs-content
#   deploy-manage/security/fips-ingest.md, PR #2136): Agent, Fleet Server, Filebeat,
#   Metricbeat and APM Server, "Linux 64-bit (FIPS)" and "Linux aarch64 (FIPS)", from 9.1
#   (and 8.19, released with it); none at 8.14 (the 8.14.0 release manifest). Windows FIPS
#   zips of the agent from 9.5.0: its packaging settings at v9.5.0 build FIPS for
#   windows/amd64 and windows/arm64, and the v9.5.0 release pipeline packages them
#   (elastic-agent PR #14444); its 9.5.2 release notes fix a Windows FIPS upgrade.
_AGENT_WINDOWS_ARM64 = {("windows", "arm64"): "9.3.2"}
_FLEET_WINDOWS_ARM64 = {("windows", "arm64"): "9.5.0"}
_FIPS_LINUX = {("linux", "x86_64"): "9.1.0", ("linux", "arm64"): "9.1.0"}
_FIPS_SINCE_8 = "8.19.0"  # the 8.x line got FIPS builds with 8.19


@dataclass(frozen=True)
class Product:
    """One downloadable product on artifacts.elastic.co."""

    name: str
    directory: str
    platforms: frozenset[Platform]
    formats: frozenset[str]
    #: Platforms with a FIPS build (``<name>-fips-<version>-...``, archives only), each with
    #: the first version that has it.
    fips_platforms: Mapping[Platform, str] = field(default_factory=dict)
    #: Platforms published only from some version on: the first version.
    platforms_since: Mapping[Platform, str] = field(default_factory=dict)
    #: Also published as a macOS universal build (``darwin-universal.tar.gz``).
    universal: bool = False
    #: The docker-image tarball suffix per architecture, when not Elastic's usual
    #: ``docker-image-linux-<amd64|arm64>.tar.gz`` (apm-server's are named differently).
    docker_suffixes: Mapping[str, str] | None = None


_AGENT_FIPS = {**_FIPS_LINUX, ("windows", "x86_64"): "9.5.0", ("windows", "arm64"): "9.5.0"}

PRODUCTS: dict[str, Product] = {
    p.name: p
    for p in (
        Product("elastic-agent", "beats/elastic-agent", _ALL | frozenset(_AGENT_WINDOWS_ARM64),
                _BEATS_FORMATS, _AGENT_FIPS, _AGENT_WINDOWS_ARM64),
        Product("filebeat", "beats/filebeat", _ALL, _BEATS_FORMATS, _FIPS_LINUX),
        Product("metricbeat", "beats/metricbeat", _ALL, _BEATS_FORMATS, _FIPS_LINUX),
        Product("auditbeat", "beats/auditbeat", _ALL, _BEATS_FORMATS),
        Product("heartbeat", "beats/heartbeat", _ALL, _BEATS_FORMATS),
        Product("packetbeat", "beats/packetbeat", _ALL, _BEATS_FORMATS),
        Product("osquerybeat", "beats/osquerybeat", _ALL, _ARCHIVE),
        Product("apm-server", "apm-server", _APM, _PACKAGED | {"docker-image"}, _FIPS_LINUX,
                docker_suffixes={"x86_64": "docker-image.tar.gz",
                                 "arm64": "docker-image-arm64.tar.gz"}),
        Product("cloudbeat", "cloudbeat", _LINUX, _ARCHIVE),
        Product("fleet-server", "fleet-server", _ALL | frozenset(_FLEET_WINDOWS_ARM64),
                _ARCHIVE, _FIPS_LINUX, _FLEET_WINDOWS_ARM64),
        Product("endpoint-security", "endpoint-dev", _ALL, _ARCHIVE, universal=True),
        Product("pf-host-agent", "prodfiler", _LINUX, _PACKAGED),
        Product("pf-elastic-collector", "prodfiler", _LINUX, _PACKAGED),
        Product("pf-elastic-symbolizer", "prodfiler", _LINUX, _PACKAGED),
    )
}

#: Every Fleet setup needs the agent itself.
BASE_PRODUCT = "elastic-agent"


def version_tuple(version: str) -> tuple[int, int, int]:
    """``9.3.0`` as ``(9, 3, 0)``, for comparisons (a pre-release suffix is ignored)."""
    core = version.split("-", 1)[0].split("+", 1)[0]
    major, minor, patch = (int(part) for part in core.split("."))
    return major, minor, patch


def at_least(version: str, first: str) -> bool:
    """Whether ``version`` is ``first`` or later."""
    return version_tuple(version) >= version_tuple(first)


def _fips_published(first: str, version: str) -> bool:
    if at_least(version, first):
        return True
    # The 9.x gate, met on the 8.x line by 8.19 (released with 9.1).
    return first == "9.1.0" and version_tuple(version)[0] == 8 and \
        at_least(version, _FIPS_SINCE_8)


def unavailable_reason(product: Product, os: str, arch: str, fmt: str, fips: bool,
                       version: str) -> str | None:
    """Why ``product`` is not published for this combination at ``version``, or None when
    it is."""
    if arch == UNIVERSAL:
        if os != "darwin" or not product.universal:
            return "no universal build"
    elif (os, arch) not in product.platforms:
        return f"not published for {os}/{arch}"
    first = product.platforms_since.get((os, arch))
    if first is not None and not at_least(version, first):
        return f"not published for {os}/{arch} before {first}"
    needed_os = FORMAT_OS.get(fmt)
    if needed_os is not None and os != needed_os:
        return f"{fmt} packages exist for {needed_os} only"
    if fmt not in product.formats:
        return f"published as archives only, no {fmt}" if product.formats == _ARCHIVE else \
            f"not published as {fmt}"
    if fmt == "msi" and arch != "x86_64":
        return f"no msi installer for {os}/{arch}"
    if arch == UNIVERSAL and fips:
        return "no FIPS build for darwin/universal"
    if fips:
        if fmt != "archive":
            return f"FIPS builds are archives only, no {fmt}"
        first_fips = product.fips_platforms.get((os, arch))
        if first_fips is None:
            return f"no FIPS build for {os}/{arch}"
        if not _fips_published(first_fips, version):
            return f"no FIPS build for {os}/{arch} before {first_fips}"
    return None


def artifact_suffix(os: str, arch: str, fmt: str, product: Product | None = None) -> str:
    """The file name suffix Elastic uses, e.g. ``linux-x86_64.tar.gz`` or ``arm64.deb``."""
    if fmt == "deb":
        return {"x86_64": "amd64", "arm64": "arm64"}[arch] + ".deb"
    if fmt == "rpm":
        return {"x86_64": "x86_64", "arm64": "aarch64"}[arch] + ".rpm"
    if fmt == "msi":
        return f"windows-{arch}.msi"
    if fmt == "docker-image":
        if product is not None and product.docker_suffixes is not None:
            return product.docker_suffixes[arch]
        return "docker-image-linux-" + {"x86_64": "amd64", "arm64": "arm64"}[arch] + ".tar.gz"
    if os == "windows":
        return f"windows-{arch}.zip"
    if os == "darwin":
        return "darwin-" + {"x86_64": "x86_64", "arm64": "aarch64",
                            UNIVERSAL: UNIVERSAL}[arch] + ".tar.gz"
    return f"linux-{arch}.tar.gz"


def artifact_filename(product: Product, version: str, os: str, arch: str, fmt: str,
                      fips: bool) -> str:
    """Elastic's file name, e.g. ``elastic-agent-fips-9.0.0-linux-arm64.tar.gz``."""
    name = f"{product.name}-fips" if fips else product.name
    return f"{name}-{version}-{artifact_suffix(os, arch, fmt, product)}"


def artifact_path(product: Product, filename: str) -> str:
    """The path below the downloads base, e.g. ``beats/elastic-agent/<file>``."""
    return f"{product.directory}/{filename}"


# -- integrations -> products ---------------------------------------------------------------
# Each integration's input types (elastic/integrations) and the binaries Elastic Agent runs
# for them (elastic-agent's specs/*.spec.yml).

_LOGS = ("filebeat",)
_LOGS_AND_METRICS = ("filebeat", "metricbeat")

INTEGRATION_PRODUCTS: dict[str, tuple[str, ...]] = {
    "endpoint": ("endpoint-security",),
    "cloud_security_posture": ("cloudbeat",),
    "cloud_asset_inventory": ("cloudbeat",),
    "apm": ("apm-server",),
    "fleet_server": ("fleet-server",),
    "profiler_agent": ("pf-host-agent",),
    "profiler_collector": ("pf-elastic-collector",),
    "profiler_symbolizer": ("pf-elastic-symbolizer",),
    "osquery_manager": ("osquerybeat",),
    "network_traffic": ("packetbeat",),
    "synthetics": ("heartbeat",),
    "auditd_manager": ("auditbeat",),
    "fim": ("auditbeat",),
    "log": _LOGS,
    "filestream": _LOGS,
    "httpjson": _LOGS,
    "cel": _LOGS,
    "system": _LOGS_AND_METRICS,
    # Content packages: Kibana assets only, no binary runs them.
    "security_detection_engine": (),
    "security_ai_prompts": (),
}


def products_for_integration(integration: str) -> tuple[tuple[str, ...], bool]:
    """The products an integration needs, and whether that came from the table.

    An integration the table does not name is taken to be an ordinary log and metrics
    integration (most are), which filebeat and metricbeat run.
    """
    if integration in INTEGRATION_PRODUCTS:
        return INTEGRATION_PRODUCTS[integration], True
    return _LOGS_AND_METRICS, False


# -- Elastic Defend's protection artifacts --------------------------------------------------
# elastic/docs-content solutions/security/configure-elastic-defend/
# configure-offline-endpoints-air-gapped-environments.md (the mirror's layout, the ETag
# requirement, the policy settings); kibana's advanced_policy_schema.ts (the defaults of
# manifest_relative_url and base_url); the manifest entry fields as kibana's endpoint
# manifest schema (common/endpoint/schema/manifest.ts) names them. See docs/defend.md.

#: The zip's members: the manifest, and the signature Endpoint checks it with.
DEFEND_MANIFEST_MEMBER = "manifest.json"
DEFEND_SIGNATURE_MEMBER = "manifest.sig"
DEFEND_COMPRESSIONS = ("none", "zlib")
DEFEND_ENCRYPTIONS = ("none",)
#: Elastic asks air-gapped sites to update the artifacts at least monthly.
DEFEND_STALE_DAYS = 30
#: The Elastic Defend integration policy's advanced settings naming the mirror, one per OS.
DEFEND_BASE_URL_SETTINGS = ("linux.advanced.artifacts.global.base_url",
                            "mac.advanced.artifacts.global.base_url",
                            "windows.advanced.artifacts.global.base_url")
#: "an additional PEM-encoded certificate to validate the protection artifact update
#: SSL/TLS server" (elastic/docs-content reference/security/defend-advanced-settings.md).
DEFEND_CA_CERT_SETTINGS = tuple(s.replace(".base_url", ".ca_cert")
                                for s in DEFEND_BASE_URL_SETTINGS)
#: The integration whose sites need the artifacts (``security.endpoint_artifacts: auto``).
DEFEND_INTEGRATION = "endpoint"


def defend_manifest_path(endpoint_version: str) -> str:
    """Where Endpoint ``endpoint_version`` finds its manifest below the server's root."""
    return f"downloads/endpoint/manifest/artifacts-{endpoint_version}.zip"


def is_defend_manifest_path(path: str) -> bool:
    """Whether ``path`` (below the server's root) is where a manifest zip lies."""
    folder, _, name = path.rpartition("/")
    return folder == "downloads/endpoint/manifest" and name.startswith("artifacts-") \
        and name.endswith(".zip")


# -- container images -------------------------------------------------------------------------
# FACTS: agents on Kubernetes run docker.elastic.co/elastic-agent/elastic-agent:<version>;
# Elastic also publishes its -complete (synthetics browsers) and -wolfi variants.

KNOWN_IMAGES = {
    "elastic-agent": "docker.elastic.co/elastic-agent/elastic-agent",
    "elastic-agent-complete": "docker.elastic.co/elastic-agent/elastic-agent-complete",
    "elastic-agent-wolfi": "docker.elastic.co/elastic-agent/elastic-agent-wolfi",
}
#: Images on this host are pulled from ``sources.registry`` (a mirror keeps their names).
ELASTIC_REGISTRY_HOST = "docker.elastic.co"


# -- Kibana settings by version -----------------------------------------------------------------
# The first Kibana that reads each setting: xpack.fleet.isAirGapped from 8.13 (kibana PR
# #174214; the 8.13 "Fleet settings in Kibana" page is the first to list it);
# packageVerification.gpgKeyPath listed from the 8.5 page; binaryDownloadSource, agent
# binary sources preconfigured in kibana.yml (kibana PR #283454, merged into main on
# 2026-08-06, after the 9.5 branch was cut and 9.5.0 released on 2026-07-29, so 9.6.0 is
# the first release that can have it; whether a 9.5.x patch got it is not known, and a
# setting Kibana does not know stops it from starting: written from 9.6.0 only).
# registryUrl and packages exist in every 8.x.

KIBANA_SETTINGS_SINCE = {
    "xpack.fleet.isAirGapped": "8.13.0",
    "xpack.fleet.packageVerification.gpgKeyPath": "8.5.0",
    "xpack.fleet.binaryDownloadSource": "9.6.0",
}


def kibana_knows(setting_name: str, kibana_version: str) -> bool:
    """Whether Kibana ``kibana_version`` reads ``setting_name`` from kibana.yml."""
    first = KIBANA_SETTINGS_SINCE.get(setting_name)
    return first is None or at_least(kibana_version, first)
