"""Everything airgap knows about Elastic's public layout, in one place.

Products and their artifact directories, file names per OS, architecture and format,
where each product ships, the FIPS builds, the package registry image tags, the EPR
routes, the signing key and the integration -> product table. Each section names the
public source (Elastic's documentation or code) its facts were read from.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

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

# -- platforms -----------------------------------------------------------------------------

OS_NAMES = ("linux", "windows", "darwin")
ARCH_NAMES = tuple(a.elastic for a in ARCHITECTURES)
#: Other names of those architectures (``amd64``), as the manifest accepts them.
ARCH_ALIASES = {name: a.elastic for a in ARCHITECTURES for name in (a.oci, *a.aliases)
                if name != a.elastic}
FORMATS = ("archive", "deb", "rpm")
FLAVORS = ("full", "lite", "tailored")
VARIANTS = ("ubi", "fips")

#: The OCI platform of the registry image for each manifest architecture (the image is
#: built for linux/amd64 and linux/arm64: elastic/package-registry's Dockerfile and CI).
IMAGE_PLATFORMS = {a.elastic: f"linux/{a.oci}" for a in ARCHITECTURES}

Platform = tuple[str, str]  # (os, arch), arch canonical: x86_64 | arm64

_ALL: frozenset[Platform] = frozenset(
    {("linux", "x86_64"), ("linux", "arm64"), ("windows", "x86_64"),
     ("darwin", "x86_64"), ("darwin", "arm64")}
)
_LINUX: frozenset[Platform] = frozenset({("linux", "x86_64"), ("linux", "arm64")})
_APM: frozenset[Platform] = frozenset(
    {("linux", "x86_64"), ("linux", "arm64"), ("windows", "x86_64"), ("darwin", "x86_64")}
)
_PACKAGED = frozenset({"archive", "deb", "rpm"})
_ARCHIVE = frozenset({"archive"})


@dataclass(frozen=True)
class Product:
    """One downloadable product on artifacts.elastic.co."""

    name: str
    directory: str
    platforms: frozenset[Platform]
    formats: frozenset[str]
    #: Platforms with a FIPS build (``<name>-fips-<version>-...``), archives only.
    fips_platforms: frozenset[Platform] = frozenset()


PRODUCTS: dict[str, Product] = {
    p.name: p
    for p in (
        Product("elastic-agent", "beats/elastic-agent", _ALL, _PACKAGED, _LINUX),
        Product("filebeat", "beats/filebeat", _ALL, _PACKAGED),
        Product("metricbeat", "beats/metricbeat", _ALL, _PACKAGED),
        Product("auditbeat", "beats/auditbeat", _ALL, _PACKAGED),
        Product("heartbeat", "beats/heartbeat", _ALL, _PACKAGED),
        Product("packetbeat", "beats/packetbeat", _ALL, _PACKAGED),
        Product("osquerybeat", "beats/osquerybeat", _ALL, _ARCHIVE),
        Product("apm-server", "apm-server", _APM, _PACKAGED, _LINUX),
        Product("cloudbeat", "cloudbeat", _LINUX, _ARCHIVE),
        Product("fleet-server", "fleet-server", _ALL, _ARCHIVE, _LINUX),
        Product("endpoint-security", "endpoint-dev", _ALL, _ARCHIVE),
        Product("pf-host-agent", "prodfiler", _LINUX, _ARCHIVE),
        Product("pf-elastic-collector", "prodfiler", _LINUX, _ARCHIVE),
        Product("pf-elastic-symbolizer", "prodfiler", _LINUX, _ARCHIVE),
    )
}

#: Every Fleet setup needs the agent itself.
BASE_PRODUCT = "elastic-agent"


def unavailable_reason(product: Product, os: str, arch: str, fmt: str, fips: bool) -> str | None:
    """Why ``product`` is not published for this combination, or None when it is."""
    if (os, arch) not in product.platforms:
        return f"not published for {os}/{arch}"
    if fmt != "archive" and os != "linux":
        return f"{fmt} packages exist for linux only"
    if fmt not in product.formats:
        return f"published as archives only, no {fmt}"
    if fips:
        if fmt != "archive":
            return f"FIPS builds are archives only, no {fmt}"
        if (os, arch) not in product.fips_platforms:
            return f"no FIPS build for {os}/{arch}"
    return None


def artifact_suffix(os: str, arch: str, fmt: str) -> str:
    """The file name suffix Elastic uses, e.g. ``linux-x86_64.tar.gz`` or ``arm64.deb``."""
    if fmt == "deb":
        return {"x86_64": "amd64", "arm64": "arm64"}[arch] + ".deb"
    if fmt == "rpm":
        return {"x86_64": "x86_64", "arm64": "aarch64"}[arch] + ".rpm"
    if os == "windows":
        return f"windows-{arch}.zip"
    if os == "darwin":
        return "darwin-" + {"x86_64": "x86_64", "arm64": "aarch64"}[arch] + ".tar.gz"
    return f"linux-{arch}.tar.gz"


def artifact_filename(product: Product, version: str, os: str, arch: str, fmt: str,
                      fips: bool) -> str:
    """Elastic's file name, e.g. ``elastic-agent-fips-9.0.0-linux-arm64.tar.gz``."""
    name = f"{product.name}-fips" if fips else product.name
    return f"{name}-{version}-{artifact_suffix(os, arch, fmt)}"


def artifact_path(product: Product, filename: str) -> str:
    """The path below the downloads base, e.g. ``beats/elastic-agent/<file>``."""
    return f"{product.directory}/{filename}"


# -- the package registry image ----------------------------------------------------------
# Elastic's "Air-gapped install" page (Fleet and Elastic Agent guide) and
# elastic/package-registry's distribution builds: tags <version>, lite-<version>, -ubi, -fips.


def registry_tag(version: str, flavor: str, variant: str | None, tag: str | None) -> str:
    """The distribution image tag: ``9.0.0``, ``lite-9.0.0``, ``lite-9.0.0-fips`` ...; a
    tailored image (which airgap composes: no such tag exists upstream) is
    ``tailored-9.0.0``."""
    if tag:
        return tag
    base = f"{flavor}-{version}" if flavor in ("lite", "tailored") else version
    return f"{base}-{variant}" if variant else base


# -- the package registry server image (the base of a tailored registry) ------------------
# elastic/package-registry's Dockerfile and config.docker.yml: the server alone, tags
# v<version> (with -ubi and -fips variants), packages read from every *.zip under
# package_paths; since 1.38 a zip without its .sig beside it stops start-up.

DEFAULT_BASE_IMAGE = "docker.elastic.co/package-registry/package-registry"
#: The server release a tailored registry is built on unless ``registry.base`` says
#: otherwise (the service.version epr.elastic.co answered with at the time).
PACKAGE_REGISTRY_VERSION = "1.40.1"
#: Where the server image's config.yml looks for packages (``package_paths``).
PACKAGE_PATH = "/packages/package-registry"
#: The packages Fleet installs when it is set up, which a tailored registry must hold.
FLEET_SETUP_PACKAGES = ("elastic_agent", "fleet_server", "system")


def base_image(variant: str | None) -> str:
    """The default base of a tailored registry: ``…/package-registry:v1.40.1[-variant]``."""
    tag = f"v{PACKAGE_REGISTRY_VERSION}" + (f"-{variant}" if variant else "")
    return f"{DEFAULT_BASE_IMAGE}:{tag}"


# -- the package registry API ------------------------------------------------------------
# elastic/package-registry main.go (routes) and its search handler (parameters).


# The package spec versions Kibana accepts, sent as spec.min / spec.max with every search:
# Elastic's own table, cmd/distribution/examples/lite.yaml (major.minor of Kibana ->
# (spec.min, spec.max), None for a bound Kibana does not send). 7.17 and 8.15 send none,
# nor do the versions between them. Past the table's last Kibana, the table's own
# catch-all entry (no kibana.version) applies.
KIBANA_SPEC: dict[tuple[int, int], tuple[str | None, str | None]] = {
    (8, 16): (None, "3.3"), (8, 17): (None, "3.3"), (8, 18): (None, "3.3"),
    (8, 19): (None, "3.4"),
    (9, 0): ("2.3", "3.3"),
    (9, 1): ("2.3", "3.4"),
}
KIBANA_SPEC_AFTER_TABLE: tuple[str | None, str | None] = ("2.3", "3.4")


def kibana_spec(kibana_version: str) -> tuple[str | None, str | None]:
    """The ``spec.min`` and ``spec.max`` a Kibana of ``kibana_version`` (``x.y.z``) sends."""
    major, minor = (int(part) for part in kibana_version.split(".")[:2])
    if (major, minor) in KIBANA_SPEC:
        return KIBANA_SPEC[major, minor]
    if (major, minor) > max(KIBANA_SPEC):
        return KIBANA_SPEC_AFTER_TABLE
    return None, None


def epr_search_path(package: str, kibana_version: str, *, all_versions: bool = False,
                    prerelease: bool = False) -> str:
    """The ``/search`` query Kibana sends for ``package``: its version, GA only (unless
    ``prerelease``), the spec range it reads; every compatible version with
    ``all_versions``, else the newest."""
    params = {"package": package, "kibana.version": kibana_version,
              "prerelease": "true" if prerelease else "false"}
    spec_min, spec_max = kibana_spec(kibana_version)
    if spec_min is not None:
        params["spec.min"] = spec_min
    if spec_max is not None:
        params["spec.max"] = spec_max
    if all_versions:
        params["all"] = "true"
    return f"search?{urlencode(params)}"


def epr_file_url(epr: str, path: str) -> str:
    """The URL of a file a ``/search`` answer names (``download``, ``signature_path``):
    Kibana appends the path to its registry URL."""
    return epr.rstrip("/") + path


def package_filename(package: str, version: str) -> str:
    """A package zip's file name, in the registry's download path and in a bundle
    (its signature adds ``.sig``)."""
    return f"{package}-{version}.zip"


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
