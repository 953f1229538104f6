"""Ready-to-use settings for Kibana, Fleet Server and the agents (FACTS.md §5, §6).

Written by ``airgap load --config DIR`` with the URLs the site chose; a README in DIR
says where each file goes and in which order to upgrade.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from airgap.bundle import write_atomically
from airgap.errors import UsageError
from airgap.signatures import elastic_key_text
from airgap.transport import split_url

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


def check_url(value: str, option: str, *, folder: bool) -> str:
    """``value`` as the settings will hold it, or a :class:`UsageError` naming ``option``."""
    parts = split_url(value)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{option} {value!r}: expected an http:// or https:// URL")
    if folder and not value.endswith("/"):
        value += "/"
    return value if folder else value.rstrip("/")


def write_config(settings: ConfigSettings) -> ConfigResult:
    """Write every snippet into ``settings.directory`` (files are replaced atomically)."""
    registry = check_url(settings.registry_url, "--registry-url", folder=False)
    artifacts = check_url(settings.artifacts_url, "--artifacts-url", folder=True)
    out = settings.directory
    (out / "elastic-agent-upgrade-keys").mkdir(parents=True, exist_ok=True)
    written: list[str] = []

    def put(name: str, text: str, mode: int = 0o644) -> None:
        write_atomically(out / name, text)
        (out / name).chmod(mode)
        written.append(name)

    kibana = {"xpack.fleet.isAirGapped": True, "xpack.fleet.registryUrl": registry,
              "xpack.fleet.packageVerification.gpgKeyPath": KIBANA_KEY_PATH}
    put("kibana.yml", "# Add to kibana.yml (written by airgap load --config)\n"
        + yaml.safe_dump(kibana, sort_keys=False))
    key = elastic_key_text()
    put("GPG-KEY-elasticsearch", key)
    if settings.ca_cert is not None:
        shutil.copyfile(settings.ca_cert, out / "ca.pem")
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
