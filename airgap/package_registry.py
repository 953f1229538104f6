"""Elastic's package registry, as airgap knows it: the distribution images' tags, the
server image a tailored registry is built on, and the API Kibana asks (``/search`` with
the package spec range each Kibana reads, and the files its answers name). Each section
names the public source (Elastic's documentation or code) its facts were read from.
"""

from __future__ import annotations

from urllib.parse import urlencode

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
