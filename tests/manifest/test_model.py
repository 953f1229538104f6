"""The manifest contract: defaults, aliases, and a clear error for every bad key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from airgap.errors import ExitCode, ManifestError
from airgap.manifest.model import Manifest, load_manifest, parse_manifest
from tests.conftest import REPO

HEADER = "apiVersion: airgap/v1\nkind: Bundle\nstack:\n  version: 9.0.0\n"


def parse(body: str, base: Path | None = None) -> Manifest:
    return parse_manifest(body, source="m.yaml", base_dir=base or Path("/"))


def problems(body: str, base: Path | None = None) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse(body, base)
    assert caught.value.exit_code == ExitCode.USAGE
    return list(caught.value.details) or [caught.value.message]


def test_minimal_manifest_takes_every_default() -> None:
    manifest = parse(HEADER)
    assert manifest.stack_version == "9.0.0"
    assert manifest.platforms.os == ("linux",)
    assert manifest.platforms.arch == ("x86_64",)
    assert manifest.platforms.formats == ("archive",)
    assert manifest.platforms.image_platforms == ("linux/amd64",)
    assert manifest.registry.image == "docker.elastic.co/package-registry/distribution"
    assert manifest.registry.flavor == "full"
    assert manifest.registry.variant is None and manifest.registry.tag is None
    assert manifest.registry_tag == "9.0.0"
    assert manifest.integrations == ()
    assert manifest.artifacts.products is None and manifest.artifacts.fips is False
    assert manifest.packages is True
    assert manifest.sources.registry == "https://docker.elastic.co"
    assert manifest.sources.artifacts == "https://artifacts.elastic.co/downloads/"
    assert manifest.sources.epr == "https://epr.elastic.co/"
    assert manifest.sources.ca_cert is None
    assert manifest.trust_keys == ()


def test_full_manifest_reads_every_key(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("pem")
    (tmp_path / "extra.asc").write_text("key")
    manifest = parse(HEADER + textwrap.dedent("""\
        platforms:
          os: [linux, windows, darwin]
          arch: [amd64, aarch64]
          formats: [archive, deb, rpm]
        registry:
          image: mirror.corp.example:5000/elastic/distribution
          flavor: lite
          variant: ubi
          tag: null
        integrations: [system, nginx]
        artifacts:
          products: [elastic-agent, fleet-server]
          fips: true
        packages: false
        sources:
          registry: https://mirror.corp.example:5000/
          artifacts: https://files.corp.example/elastic
          epr: http://epr.corp.example:8080
          ca_cert: certs/ca.pem
        trust:
          keys: [extra.asc]
    """), base=tmp_path)
    assert manifest.platforms.arch == ("x86_64", "arm64")
    assert manifest.platforms.image_platforms == ("linux/amd64", "linux/arm64")
    assert manifest.platforms.os == ("linux", "windows", "darwin")
    assert manifest.registry_tag == "lite-9.0.0-ubi"
    assert manifest.registry.image == "mirror.corp.example:5000/elastic/distribution"
    assert manifest.integrations == ("system", "nginx")
    assert manifest.artifacts.products == ("elastic-agent", "fleet-server")
    assert manifest.artifacts.fips is True
    assert manifest.packages is False
    assert manifest.sources.registry == "https://mirror.corp.example:5000"
    assert manifest.sources.artifacts == "https://files.corp.example/elastic/"
    assert manifest.sources.epr == "http://epr.corp.example:8080/"
    assert manifest.sources.ca_cert == tmp_path / "certs" / "ca.pem"
    assert manifest.trust_keys == (tmp_path / "extra.asc",)


@pytest.mark.parametrize(("registry", "tag"), [
    ("flavor: full", "9.0.0"),
    ("flavor: lite", "lite-9.0.0"),
    ("variant: fips", "9.0.0-fips"),
    ("{flavor: lite, variant: fips}", "lite-9.0.0-fips"),
    ("{flavor: lite, tag: production}", "production"),
])
def test_registry_tag_follows_flavor_variant_and_tag(registry: str, tag: str) -> None:
    body = HEADER + (f"registry: {registry}\n" if registry.startswith("{")
                     else f"registry:\n  {registry}\n")
    assert parse(body).registry_tag == tag


def test_aliases_normalise_and_duplicates_after_aliasing_are_errors() -> None:
    assert parse(HEADER + "platforms:\n  arch: [aarch64]\n").platforms.arch == ("arm64",)
    found = problems(HEADER + "platforms:\n  arch: [x86_64, amd64]\n")
    assert found == ["m.yaml:6: platforms.arch[1]: x86_64 is already given at platforms.arch[0]"]


# Each case: a body after the header, and the exact problem expected.
BAD_VALUES = [
    ("platforms:\n  arch: [x86_64, sparc]\n",
     "m.yaml:6: platforms.arch[1]: 'sparc' is not one of x86_64, arm64 (aliases: amd64, aarch64)"),
    ("platforms:\n  os: [linux, solaris]\n",
     "m.yaml:6: platforms.os[1]: 'solaris' is not one of linux, windows, darwin"),
    ("platforms:\n  formats: [pkg]\n",
     "m.yaml:6: platforms.formats[0]: 'pkg' is not one of archive, deb, rpm, msi, "
     "docker-image"),
    ("platforms:\n  os: []\n",
     "m.yaml:6: platforms.os: name at least one of linux, windows, darwin"),
    ("registry:\n  flavor: tiny\n",
     "m.yaml:6: registry.flavor: 'tiny' is not one of full, lite, tailored"),
    ("registry:\n  variant: alpine\n",
     "m.yaml:6: registry.variant: 'alpine' is not one of ubi, fips"),
    ("registry:\n  image: docker.elastic.co/package-registry/distribution:9.0.0\n",
     "m.yaml:6: registry.image: 'docker.elastic.co/package-registry/distribution:9.0.0' is "
     "not an image repository; give it without tag or digest (use registry.tag)"),
    ("registry:\n  tag: 'bad tag'\n", "m.yaml:6: registry.tag: 'bad tag' is not a valid image tag"),
    ("integrations: [nginx, Nginx!]\n",
     "m.yaml:5: integrations[1]: expected an integration package name like 'nginx', "
     "got the string 'Nginx!'"),
    ("integrations: [nginx, nginx]\n",
     "m.yaml:5: integrations[1]: nginx is already given at integrations[0]"),
    ("artifacts:\n  products: [elastic-agnt]\n",
     "m.yaml:6: artifacts.products[0]: 'elastic-agnt' is not a known product; "
     "did you mean 'elastic-agent'?"),
    ("artifacts:\n  fips: 'yes'\n",
     "m.yaml:6: artifacts.fips: expected true or false, got the string 'yes'"),
    ("packages: 1\n", "m.yaml:5: packages: expected true or false, got the number 1"),
    ("sources:\n  artifacts: ftp://mirror/downloads\n",
     "m.yaml:6: sources.artifacts: 'ftp://mirror/downloads' is not an http:// or https:// URL"),
    ("sources:\n  registry: https://mirror.example/v2/\n",
     "m.yaml:6: sources.registry: 'https://mirror.example/v2/': give the registry's root URL, "
     "without a path"),
    ("sources:\n  epr: https://epr.example/?x=1\n",
     "m.yaml:6: sources.epr: 'https://epr.example/?x=1' must not have a query or fragment"),
    ("sources:\n  artifacts: https://bob:hunter2@mirror.example/downloads/\n",
     "m.yaml:6: sources.artifacts: must not hold a user name or password; give registry "
     "credentials with AIRGAP_REGISTRY, AIRGAP_REGISTRY_USERNAME and AIRGAP_REGISTRY_PASSWORD "
     "or docker login"),
    ("sources:\n  registry: 'http://[::1'\n",
     "m.yaml:6: sources.registry: 'http://[::1' is not a valid URL (check its host and port)"),
    ("sources:\n  registry: 'http://127.0.0.1:abc'\n",
     "m.yaml:6: sources.registry: 'http://127.0.0.1:abc' is not a valid URL (check its host "
     "and port)"),
    ("sources:\n  registry: 'https://\u2488.example'\n",
     "m.yaml:6: sources.registry: 'https://\u2488.example' is not a valid URL (check its "
     "host and port)"),
    ("sources:\n  epr: 'https://epr.example/a b'\n",
     "m.yaml:6: sources.epr: 'https://epr.example/a b' is not an http:// or https:// URL"),
    ("integrations: [\"nginx\\n\"]\n",
     "m.yaml:5: integrations[0]: expected an integration package name like 'nginx', "
     "got the string 'nginx\\n'"),
    ("trust:\n  keys: ['~nosuchuser-airgap/key.asc']\n",
     "m.yaml:6: trust.keys[0]: '~nosuchuser-airgap/key.asc': Could not determine home "
     "directory."),
    ("sources:\n  ca_cert: missing.pem\n", "m.yaml:6: sources.ca_cert: no such file: /missing.pem"),
    ("trust:\n  keys: [nothere.asc]\n", "m.yaml:6: trust.keys[0]: no such file: /nothere.asc"),
]


@pytest.mark.parametrize(("body", "expected"), BAD_VALUES, ids=[b.split(":")[0] + "-" + str(i)
                                                                 for i, (b, _) in
                                                                 enumerate(BAD_VALUES)])
def test_bad_value_is_reported_with_file_line_and_key(body: str, expected: str) -> None:
    assert problems(HEADER + body) == [expected]


BAD_TYPES = [
    ("platforms: [linux]\n", "m.yaml:5: platforms: expected a mapping with keys os, arch, "
                             "formats, got a list"),
    ("platforms:\n  arch: x86_64\n", "m.yaml:6: platforms.arch: expected a list, "
                                     "got the string 'x86_64'"),
    ("registry: lite\n", "m.yaml:5: registry: expected a mapping with keys image, flavor, "
                         "variant, tag, base, packages, all_versions, got the string 'lite'"),
    ("integrations: nginx\n", "m.yaml:5: integrations: expected a list, got the string 'nginx'"),
    ("artifacts:\n  products: elastic-agent\n",
     "m.yaml:6: artifacts.products: expected a list, got the string 'elastic-agent'"),
    ("sources:\n  registry: 5000\n", "m.yaml:6: sources.registry: expected a string like "
                                     "'https://docker.elastic.co', got the number 5000 (quote it)"),
    ("trust:\n  keys: key.asc\n",
     "m.yaml:6: trust.keys: expected a list, got the string 'key.asc'"),
    ("platforms:\n  arch: [64]\n", "m.yaml:6: platforms.arch[0]: expected one of x86_64, arm64, "
                                   "got the number 64 (aliases: amd64, aarch64)"),
]


@pytest.mark.parametrize(("body", "expected"), BAD_TYPES)
def test_bad_type_is_reported(body: str, expected: str) -> None:
    assert problems(HEADER + body) == [expected]


@pytest.mark.parametrize(("body", "expected"), [
    ("platform:\n  os: [linux]\n", "m.yaml:5: platform: unknown key; did you mean 'platforms'?"),
    ("platforms:\n  archs: [arm64]\n",
     "m.yaml:6: platforms.archs: unknown key; did you mean 'arch'?"),
    ("registry:\n  flavour: lite\n",
     "m.yaml:6: registry.flavour: unknown key; did you mean 'flavor'?"),
    ("artifacts:\n  product: auto\n",
     "m.yaml:6: artifacts.product: unknown key; did you mean 'products'?"),
    ("sources:\n  ca: x\n", "m.yaml:6: sources.ca: unknown key; known keys: registry, artifacts, "
                            "epr, security, ca_cert"),
    ("trust:\n  key: []\n", "m.yaml:6: trust.key: unknown key; did you mean 'keys'?"),
    ("stack:\n  versions: 1\n", "m.yaml:5: stack: given twice (lines 3 and 5); keep one"),
])
def test_unknown_key_suggests_a_close_match(body: str, expected: str) -> None:
    assert expected in problems(HEADER + body)


def test_stack_key_unknown_inside_stack() -> None:
    body = "apiVersion: airgap/v1\nkind: Bundle\nstack:\n  version: 9.0.0\n  verison: 9.1.0\n"
    assert problems(body) == ["m.yaml:5: stack.verison: unknown key; did you mean 'version'?"]


@pytest.mark.parametrize(("body", "expected"), [
    ("kind: Bundle\nstack: {version: 9.0.0}\n", "m.yaml: apiVersion: required; write "
                                                "`apiVersion: airgap/v1`"),
    ("apiVersion: airgap/v1\nstack: {version: 9.0.0}\n", "m.yaml: kind: required; write "
                                                         "`kind: Bundle`"),
    ("apiVersion: airgap/v1\nkind: Bundle\n", "m.yaml: stack: required; write "
                                              "`stack: {version: 9.0.0}`"),
    ("apiVersion: airgap/v1\nkind: Bundle\nstack: {}\n",
     "m.yaml: stack.version: required: the Elastic Stack version, like 9.0.0"),
    ("apiVersion: airgap/v2\nkind: Bundle\nstack: {version: 9.0.0}\n",
     "m.yaml:1: apiVersion: 'airgap/v2' is not supported; this airgap reads apiVersion: airgap/v1"),
    ("apiVersion: airgap/v1\nkind: Image\nstack: {version: 9.0.0}\n",
     "m.yaml:2: kind: 'Image' is not supported; this airgap reads kind: Bundle"),
])
def test_missing_or_wrong_required_key(body: str, expected: str) -> None:
    assert problems(body) == [expected]


@pytest.mark.parametrize(("version", "expected"), [
    ("9.0", "m.yaml:4: stack.version: expected a string like '9.0.0', got the number 9.0 "
            "(quote it)"),
    ("'9.0'", "m.yaml:4: stack.version: '9.0' is not a version x.y.z (like 9.0.0)"),
    ("v9.0.0", "m.yaml:4: stack.version: 'v9.0.0' is not a version x.y.z (like 9.0.0)"),
    ("9.0.0-SNAPSHOT", "m.yaml:4: stack.version: '9.0.0-SNAPSHOT' is not a version x.y.z "
                       "(like 9.0.0)"),
    ("09.0.0", "m.yaml:4: stack.version: '09.0.0' is not a version x.y.z (like 9.0.0)"),
])
def test_bad_stack_versions(version: str, expected: str) -> None:
    body = f"apiVersion: airgap/v1\nkind: Bundle\nstack:\n  version: {version}\n"
    assert problems(body) == [expected]


def test_every_problem_is_listed_at_once_in_line_order() -> None:
    found = problems(HEADER + "platforms:\n  arch: [sparc]\nregistry:\n  flavour: lite\n"
                              "packages: maybe\n")
    assert [line.split(":")[1] for line in found] == ["6", "8", "9"]


def test_not_yaml_and_empty_and_not_a_mapping() -> None:
    assert problems("apiVersion: [unclosed\n")[0].startswith("m.yaml:2: not valid YAML")
    assert problems("") == ["m.yaml: the manifest is empty; it needs apiVersion, kind and "
                            "stack.version at least"]
    assert problems("- a\n- b\n")[0].startswith("m.yaml: expected a mapping of keys")


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    (folder / "keys").mkdir(parents=True)
    (folder / "keys" / "ops.asc").write_text("key")
    path = folder / "bundle.yaml"
    path.write_text(HEADER + "trust:\n  keys: [keys/ops.asc]\n")
    manifest = load_manifest(path)
    assert manifest.trust_keys == (folder / "keys" / "ops.asc",)
    assert manifest.source == str(path)
    assert manifest.document["stack"] == {"version": "9.0.0"}


def test_missing_manifest_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such manifest file"):
        load_manifest(tmp_path / "absent.yaml")


@pytest.mark.parametrize("name", ["minimal.yaml", "lite-x86_64.yaml", "full-multiarch.yaml",
                                  "kubernetes-defend.yaml", "tailored-multiarch.yaml"])
def test_shipped_example_manifests_are_valid(name: str) -> None:
    manifest = load_manifest(REPO / "manifests" / name)
    assert manifest.stack_version == "9.0.0"


# -- registry.flavor: tailored ----------------------------------------------------------------


def test_tailored_defaults_to_elastics_pinned_server_image() -> None:
    from airgap import package_registry

    manifest = parse(HEADER + "registry:\n  flavor: tailored\n")
    assert manifest.registry.tailored
    assert manifest.registry.base_image == \
        f"docker.elastic.co/package-registry/package-registry:v{package_registry.PACKAGE_REGISTRY_VERSION}"
    assert manifest.registry_tag == "tailored-9.0.0"
    assert manifest.registry.packages == () and manifest.registry.all_versions is False
    fips = parse(HEADER + "registry: {flavor: tailored, variant: fips}\n")
    assert fips.registry.base_image.endswith(f"v{package_registry.PACKAGE_REGISTRY_VERSION}-fips")
    assert fips.registry_tag == "tailored-9.0.0-fips"


def test_tailored_reads_base_packages_and_all_versions() -> None:
    manifest = parse(HEADER + textwrap.dedent("""\
        registry:
          flavor: tailored
          base: mirror.corp:5000/elastic/package-registry:v1.41.0
          packages: [kafka, apache@1.2.3, beta_pkg@0.3.0-rc.1]
          all_versions: true
          tag: site-a
    """))
    registry = manifest.registry
    assert registry.base_image == "mirror.corp:5000/elastic/package-registry:v1.41.0"
    assert [str(p) for p in registry.packages] == ["kafka", "apache@1.2.3",
                                                  "beta_pkg@0.3.0-rc.1"]
    assert registry.all_versions is True
    assert manifest.registry_tag == "site-a"


TAILORED_PROBLEMS = [
    ("registry:\n  flavor: lite\n  packages: [kafka]\n",
     "m.yaml:7: registry.packages: only for registry.flavor: tailored (the lite image "
     "holds its own packages)"),
    ("registry:\n  base: x.io/server:v1\n",
     "m.yaml:6: registry.base: only for registry.flavor: tailored (the full image holds its "
     "own packages)"),
    ("registry:\n  flavor: tailored\n  base: docker.elastic.co/package-registry/"
     "package-registry\n",
     "m.yaml:7: registry.base: 'docker.elastic.co/package-registry/package-registry' is not "
     "an image name with a tag, like docker.elastic.co/package-registry/package-registry:v"),
    ("registry:\n  flavor: tailored\n  packages: [kafka, 'Bad!', nginx@2]\n",
     "m.yaml:7: registry.packages[1]: expected a package name like 'nginx', or a name and "
     "version like 'nginx@2.0.0', got the string 'Bad!'"),
    ("registry:\n  flavor: tailored\n  packages: [nginx@2]\n",
     "m.yaml:7: registry.packages[0]: expected a package name like 'nginx', or a name and "
     "version like 'nginx@2.0.0', got the string 'nginx@2'"),
    ("registry:\n  flavor: tailored\n  packages: [kafka, kafka@1.0.0]\n",
     "m.yaml:7: registry.packages[1]: kafka is already given at registry.packages[0]"),
    ("registry:\n  flavor: tailored\n  all_versions: 'yes'\n",
     "m.yaml:7: registry.all_versions: expected true or false, got the string 'yes'"),
    ("registry:\n  flavor: tailored\n  all_version: true\n",
     "m.yaml:7: registry.all_version: unknown key; did you mean 'all_versions'?"),
    ("registry:\n  flavor: tailored\npackages: false\n",
     "m.yaml:7: packages: false cannot go with registry.flavor: tailored, whose image is "
     "made of the packages; remove one of them"),
]


@pytest.mark.parametrize(("body", "expected"), TAILORED_PROBLEMS)
def test_tailored_mistakes_name_file_line_and_key(body: str, expected: str) -> None:
    found = problems(HEADER + body)
    assert any(p.startswith(expected) for p in found), found


def test_images_security_and_universal_builds_read_with_their_defaults() -> None:
    manifest = parse(HEADER + textwrap.dedent("""\
        integrations: [endpoint]
        artifacts: {darwin_universal: true}
        images:
          - elastic-agent
          - name: docker.elastic.co/elastic-agent/elastic-agent-wolfi
            tag: 9.0.1
            platforms: [linux/arm64]
        sources: {security: 'https://mirror.corp.example/security/'}
        """))
    assert manifest.artifacts.darwin_universal is True
    assert [(i.name, i.tag, i.platforms, i.known) for i in manifest.images] == [
        ("docker.elastic.co/elastic-agent/elastic-agent", None, None, "elastic-agent"),
        ("docker.elastic.co/elastic-agent/elastic-agent-wolfi", "9.0.1", ("linux/arm64",),
         None)]
    assert manifest.security.endpoint_versions is None
    assert manifest.endpoint_versions == ("9.0.0",)
    assert manifest.sources.security == "https://mirror.corp.example/security/"
    assert parse(HEADER).sources.security == "https://artifacts.security.elastic.co/"
    assert parse(HEADER).endpoint_versions == ()
    listed = parse(HEADER + "security: {endpoint_artifacts: ['8.19.3', 9.1.0]}\n")
    assert listed.endpoint_versions == ("8.19.3", "9.1.0")


@pytest.mark.parametrize(("body", "expected"), [
    ("images: [elastic-agnet]\n",
     "m.yaml:5: images[0].name: 'elastic-agnet' is not a known image or an image repository "
     "without tag; did you mean 'elastic-agent'?"),
    ("images: [{name: docker.elastic.co/elastic-agent/elastic-agent:9.0.0}]\n",
     "m.yaml:5: images[0].name: 'docker.elastic.co/elastic-agent/elastic-agent:9.0.0' is not "
     "a known image or an image repository without tag"),
    ("images: [{name: elastic-agent, platform: [linux/amd64]}]\n",
     "m.yaml:5: images[0].platform: unknown key; did you mean 'platforms'?"),
    ("images: [{name: elastic-agent, platforms: [amd64]}]\n",
     "m.yaml:5: images[0].platforms[0]: expected a platform like linux/amd64 or linux/arm64, "
     "got the string 'amd64'"),
    ("images: [{tag: 9.0.0}]\n", "m.yaml:5: images[0].name: required"),
    ("images: [elastic-agent, elastic-agent]\n",
     "m.yaml:5: images[1]: docker.elastic.co/elastic-agent/elastic-agent is already given"),
    ("images: [7]\n", "m.yaml:5: images[0]: expected a known image"),
    ("security: {endpoint_artifacts: [8.14]}\n",
     "m.yaml:5: security.endpoint_artifacts[0]: expected an Endpoint version like 9.0.0, got "
     "the number 8.14 (quote it if YAML reads a number)"),
    ("security: {endpoint: true}\n",
     "m.yaml:5: security.endpoint: unknown key; did you mean 'endpoint_artifacts'?"),
    ("artifacts: {darwin_universal: yes please}\n",
     "m.yaml:5: artifacts.darwin_universal: expected true or false"),
    ("sources: {security: 'ftp://x/'}\n", "m.yaml:5: sources.security:"),
])
def test_bad_images_and_security_keys(body: str, expected: str) -> None:
    found = problems(HEADER + body)
    assert any(p.startswith(expected) for p in found), found
