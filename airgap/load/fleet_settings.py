"""Ready-to-use settings for Kibana, Fleet Server and the agents.

Written by ``airgap load --config DIR`` with the URLs the site chose; a README in DIR
says where each file goes and in which order to upgrade. The settings are Elastic's:
Kibana's Fleet settings (``xpack.fleet.*``, "Air-gapped install" in the Fleet and
Elastic Agent guide), Fleet Server's ``elastic-agent-upgrade-keys/default.pgp``
(fleet-server's PGP key endpoint), ``agent.download.sourceURI`` and Elastic Defend's
``advanced.artifacts.global.base_url`` (and ``…ca_cert`` for an HTTPS mirror with a
private CA). ``kibana.yml`` holds only settings the bundle's
Kibana version reads (:func:`airgap.elastic.kibana_knows`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from airgap import elastic
from airgap.errors import UsageError, setting
from airgap.files import atomic_write, copy_atomically, read_regular, remove_dead_leftovers
from airgap.load.fleet_readme import readme
from airgap.net.urls import BadURL, check_url
from airgap.trust.gpg import elastic_key_text

KIBANA_KEY_PATH = "/etc/kibana/GPG-KEY-elasticsearch"
KIBANA_CA_PATH = "/etc/kibana/certs/ca.pem"
FLEET_PGP_DIR = "/etc/fleet-server/elastic-agent-upgrade-keys"
DOWNLOAD_SOURCE_ID = "airgap-artifact-registry"
DEFEND_SETTINGS = "elastic-defend-advanced-settings.yml"


@dataclass(frozen=True)
class ConfigSettings:
    """What ``--config`` writes, and the URLs it points at. ``packages`` (name ->
    version) pins Kibana to them when given; ``defend`` writes Elastic Defend's policy
    settings, pointing at ``defend_url`` (default: ``artifacts_url`` without its
    ``downloads/``)."""

    directory: Path
    registry_url: str
    artifacts_url: str
    ca_cert: Path | None = None
    stack_version: str = "9.0.0"
    packages: Mapping[str, str] | None = None
    defend: bool = False
    defend_url: str | None = None


@dataclass(frozen=True)
class ConfigResult:
    """The files written, relative to the directory."""

    directory: Path
    files: tuple[str, ...]


def check_urls(registry_url: str, artifacts_url: str) -> tuple[str, str]:
    """The package registry's URL and the agent binary source's, as the settings will hold
    them (the second ends with ``/``); a :class:`UsageError` naming the setting otherwise."""
    checked = []
    for name, value, folder in (("registry_url", registry_url, False),
                                ("artifacts_url", artifacts_url, True)):
        try:
            checked.append(check_url(value, folder=folder))
        except BadURL as exc:
            raise UsageError(f"{setting(name)} {exc}") from None
    return checked[0], checked[1]


def defend_base_url(artifacts: str, defend_url: str | None) -> str:
    """Defend's ``base_url``: the server root its ``/downloads/endpoint/...`` paths are
    joined to, without a trailing ``/`` (as Elastic's default is written)."""
    if defend_url is not None:
        try:
            return check_url(defend_url, folder=True).rstrip("/")
        except BadURL as exc:
            raise UsageError(f"{setting('defend_url')} {exc}") from None
    if not artifacts.endswith("/downloads/"):
        raise UsageError(f"{setting('artifacts_url')} {artifacts} does not end with "
                         "/downloads/: give Elastic Defend's mirror with "
                         f"{setting('defend_url')}")
    return artifacts.removesuffix("downloads/").rstrip("/")


def kibana_settings(settings: ConfigSettings, registry: str, artifacts: str
                    ) -> dict[str, Any]:
    """The kibana.yml settings, only those the bundle's Kibana version reads."""
    version = settings.stack_version
    wanted: dict[str, Any] = {
        "xpack.fleet.isAirGapped": True, "xpack.fleet.registryUrl": registry,
        "xpack.fleet.packageVerification.gpgKeyPath": KIBANA_KEY_PATH,
        "xpack.fleet.binaryDownloadSource": [{
            "id": DOWNLOAD_SOURCE_ID, "name": "airgap artifact registry", "host": artifacts,
            "is_default": True}],
    }
    if settings.packages:
        wanted["xpack.fleet.packages"] = [{"name": name, "version": number}
                                          for name, number in sorted(settings.packages.items())]
    return {key: value for key, value in wanted.items() if elastic.kibana_knows(key, version)}


_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
MAX_CA = 1 << 20


class _BlockDumper(yaml.SafeDumper):
    """Writes a certificate as the block of lines it is, to paste as it is."""


def _block_strings(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _block_strings)


def _defend_ca(ca_cert: Path | None, defend: str) -> str | None:
    """The PEM text of ``--ca-cert`` for Defend's ``…artifacts.global.ca_cert``: only
    for a mirror served over HTTPS (an http:// one has no certificate to check)."""
    if ca_cert is None or not defend.startswith("https://"):
        return None
    try:
        text = read_regular(ca_cert, MAX_CA).decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None  # not PEM text: ca.pem is copied for Kibana as it is, nothing more
    return text.strip() + "\n" if _PEM_BEGIN in text else None


def write_config(settings: ConfigSettings) -> ConfigResult:
    """Write every snippet into ``settings.directory`` (files are replaced atomically)."""
    registry, artifacts = check_urls(settings.registry_url, settings.artifacts_url)
    defend = defend_base_url(artifacts, settings.defend_url) if settings.defend else None
    out = settings.directory
    (out / "elastic-agent-upgrade-keys").mkdir(parents=True, exist_ok=True)
    remove_dead_leftovers(out, recursive=True)  # what a killed run was writing
    written: list[str] = []

    def put(name: str, text: str, mode: int = 0o644) -> None:
        atomic_write(out / name, text, mode)
        written.append(name)

    kibana = kibana_settings(settings, registry, artifacts)
    put("kibana.yml", f"# Add to kibana.yml of Kibana {settings.stack_version} (written by "
        "airgap load --config)\n" + yaml.safe_dump(kibana, sort_keys=False))
    key = elastic_key_text()
    put("GPG-KEY-elasticsearch", key)
    if settings.ca_cert is not None:
        copy_atomically(settings.ca_cert, out / "ca.pem")
        written.append("ca.pem")
        # No quotes: `docker --env-file` keeps them as part of the value (systemd's
        # EnvironmentFile= takes the line either way; the path has no spaces).
        put("kibana.env", f"NODE_EXTRA_CA_CERTS={KIBANA_CA_PATH}\n")
    put("elastic-agent.yml", "# Add to elastic-agent.yml of standalone agents\n"
        + yaml.safe_dump({"agent.download.sourceURI": artifacts}, sort_keys=False))
    put("agent-binary-source.txt", artifacts + "\n")
    # Fleet Server serves this file to agents that ask for the upgrade key; it must be 0600.
    put("elastic-agent-upgrade-keys/default.pgp", key, 0o600)
    defend_ca = None
    if defend is not None:
        defend_ca = _defend_ca(settings.ca_cert, defend)
        policy: dict[str, str] = dict.fromkeys(elastic.DEFEND_BASE_URL_SETTINGS, defend)
        if defend_ca is not None and defend_ca.count(_PEM_BEGIN) == 1:
            policy.update(dict.fromkeys(elastic.DEFEND_CA_CERT_SETTINGS, defend_ca))
        put(DEFEND_SETTINGS, "# Elastic Defend integration policy → Advanced settings, in "
            "each policy (written by airgap load --config)\n"
            + yaml.dump(policy, Dumper=_BlockDumper, sort_keys=False))
    put("README.md", readme(registry, artifacts, kibana_version=settings.stack_version,
                            kibana=kibana, with_ca=settings.ca_cert is not None,
                            key_path=KIBANA_KEY_PATH, ca_path=KIBANA_CA_PATH,
                            pgp_dir=FLEET_PGP_DIR, defend=defend, defend_file=DEFEND_SETTINGS,
                            defend_certificates=None if defend_ca is None else
                            defend_ca.count(_PEM_BEGIN)))
    return ConfigResult(out, tuple(written))


