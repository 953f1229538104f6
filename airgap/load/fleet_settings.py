"""Ready-to-use settings for Kibana, Fleet Server and the agents.

Written by ``airgap load --config DIR`` with the URLs the site chose; a README in DIR
says where each file goes and in which order to upgrade. The settings are Elastic's:
Kibana's Fleet settings (``xpack.fleet.*``, "Air-gapped install" in the Fleet and
Elastic Agent guide), Fleet Server's ``elastic-agent-upgrade-keys/default.pgp``
(fleet-server's PGP key endpoint) and ``agent.download.sourceURI``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from airgap.errors import UsageError, setting
from airgap.files import atomic_write, copy_atomically, remove_dead_leftovers
from airgap.net.urls import BadURL, check_url
from airgap.trust.gpg import elastic_key_text

KIBANA_KEY_PATH = "/etc/kibana/GPG-KEY-elasticsearch"
KIBANA_CA_PATH = "/etc/kibana/certs/ca.pem"


@dataclass(frozen=True)
class ConfigSettings:
    """What ``--config`` writes, and the URLs it points at."""

    directory: Path
    registry_url: str
    artifacts_url: str
    ca_cert: Path | None = None


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


def write_config(settings: ConfigSettings) -> ConfigResult:
    """Write every snippet into ``settings.directory`` (files are replaced atomically)."""
    registry, artifacts = check_urls(settings.registry_url, settings.artifacts_url)
    out = settings.directory
    (out / "elastic-agent-upgrade-keys").mkdir(parents=True, exist_ok=True)
    remove_dead_leftovers(out, recursive=True)  # what a killed run was writing
    written: list[str] = []

    def put(name: str, text: str, mode: int = 0o644) -> None:
        atomic_write(out / name, text, mode)
        written.append(name)

    kibana = {"xpack.fleet.isAirGapped": True, "xpack.fleet.registryUrl": registry,
              "xpack.fleet.packageVerification.gpgKeyPath": KIBANA_KEY_PATH}
    put("kibana.yml", "# Add to kibana.yml (written by airgap load --config)\n"
        + yaml.safe_dump(kibana, sort_keys=False))
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
    put("README.md", _readme(registry, artifacts, settings.ca_cert is not None))
    return ConfigResult(out, tuple(written))


def _readme(registry: str, artifacts: str, with_ca: bool) -> str:
    ca = (f"- `ca.pem` → `{KIBANA_CA_PATH}`, and the line in `kibana.env` into Kibana's "
          "environment (for a systemd service: `Environment=` in a drop-in; for Docker: "
          "`--env-file kibana.env`), so Kibana trusts the registry's certificate.\n"
          if with_ca else "")
    return f"""# Settings for an air-gapped Fleet

Written by `airgap load --config`. The package registry is at {registry}; the agent
binaries are served at {artifacts}.

Upgrade in this order (Elastic's recommendation): the package registry, then the stack
with Kibana, then the artifact registry, then Fleet Server, then the agents.

## Kibana

- Merge `kibana.yml` into `kibana.yml`: Fleet stops reaching out to the internet and
  installs integrations from {registry}.
- `GPG-KEY-elasticsearch` → `{KIBANA_KEY_PATH}`: Kibana checks package signatures with it.
{ca}
## Fleet (Kibana → Fleet → Settings → Agent binary download)

- Add the URL in `agent-binary-source.txt` ({artifacts}) and make it the default, so
  Fleet-managed agents upgrade from the artifact registry.

## Fleet Server

- Copy `elastic-agent-upgrade-keys/` into the directory of the fleet-server binary
  (`<fleet-server dir>/elastic-agent-upgrade-keys/default.pgp`), keeping mode 0600:
  Fleet Server then gives agents the upgrade key without reaching artifacts.elastic.co.

## Standalone agents

- Merge `elastic-agent.yml` into each agent's `elastic-agent.yml`, or upgrade with
  `elastic-agent upgrade <version> --source-uri {artifacts}`.
"""
