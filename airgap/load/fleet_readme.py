"""The README ``airgap load --config`` writes beside the settings: where each file goes,
in Elastic's upgrade order, and what Fleet Server needs to serve the agents' upgrade key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airgap import elastic


def readme(registry: str, artifacts: str, *, kibana_version: str, kibana: Mapping[str, Any],
           with_ca: bool, key_path: str, ca_path: str, pgp_dir: str,
           defend: str | None, defend_file: str,
           defend_certificates: int | None = None) -> str:
    """The README's text."""
    kibana_lines = "".join(f"  - `{key}`\n" for key in kibana)
    left_out = [key for key in elastic.KIBANA_SETTINGS_SINCE if key not in kibana
                and key != "xpack.fleet.packages"]
    older = "".join(f"  - not `{key}`: Kibana reads it from "
                    f"{elastic.KIBANA_SETTINGS_SINCE[key]} only\n" for key in left_out)
    # Elastic's Fleet settings reference says only that these are "installed when the
    # Fleet app starts up": no promise that Kibana keeps to them afterwards.
    pinned = ("- `xpack.fleet.packages` names the package versions the bundle carries: Kibana "
              "installs them when the Fleet app starts up (Elastic's Fleet settings say no "
              "more: someone may still install or upgrade another version later).\n"
              if "xpack.fleet.packages" in kibana else "")
    ca = (f"- `ca.pem` → `{ca_path}`, and the line in `kibana.env` into Kibana's "
          "environment (for a systemd service: `Environment=` in a drop-in; for Docker: "
          "`--env-file kibana.env`), so Kibana trusts the registry's certificate.\n"
          if with_ca else "")
    if "xpack.fleet.binaryDownloadSource" in kibana:
        source = (f"- Nothing to do: `xpack.fleet.binaryDownloadSource` in `kibana.yml` "
                  f"makes {artifacts} the default agent binary source (Kibana shows it "
                  "as preconfigured).\n")
    else:
        source = (f"- In Kibana → Fleet → Settings → Agent binary download, add the URL in "
                  f"`agent-binary-source.txt` ({artifacts}) and make it the default, so "
                  "Fleet-managed agents upgrade from the artifact registry.\n")
    defend_text = ""
    if defend is not None:
        settings = "".join(f"  - `{key}`: `{defend}`\n"
                           for key in elastic.DEFEND_BASE_URL_SETTINGS)
        if defend_certificates == 1:
            settings += "".join(f"  - `{key}`: the certificate in `ca.pem`, so endpoints "
                                "trust the mirror's TLS certificate\n"
                                for key in elastic.DEFEND_CA_CERT_SETTINGS)
        elif defend_certificates:
            settings += (f"  - `ca.pem` holds {defend_certificates} certificates and Elastic "
                         "documents `…advanced.artifacts.global.ca_cert` as one certificate: "
                         "give it (in each of the three operating systems) the one that "
                         "signed the mirror's certificate\n")
        defend_text = f"""
## Elastic Defend (Kibana → Security → Manage → Policies → each policy → Advanced settings)

- Enter the settings in `{defend_file}`, so endpoints download their protection
  artifacts from the artifact registry (which serves them, with an `ETag` for each):
{settings}- Recent Kibana lets only a superuser change these `artifacts.global` settings (a
  403 "requires superuser/admin privileges" otherwise): enter them as one.
- A policy whose Protection updates are pinned to a date (`global_manifest_version`)
  is not known to work with a mirror: the bundle carries the newest manifest only
  (`artifacts-<version>.zip`, as Elastic's offline page mirrors it), and Elastic does
  not document where Endpoint finds a dated one. Keep automatic updates on for
  endpoints that use the mirror, or check that they report the version you chose.
- Check: on an endpoint, `Endpoint.policy.applied.artifacts.global.version` (the
  `endpoint.policy` documents of `metrics-*`) becomes the bundle's `manifest_version`.
- Elastic updates these artifacts continuously: carry a new bundle across at least
  monthly (`airgap verify` and `airgap inspect` warn after
  {elastic.DEFEND_STALE_DAYS} days).
"""
    return f"""# Settings for an air-gapped Fleet

Written by `airgap load --config` for Kibana {kibana_version}. The package registry is at
{registry}; the agent binaries are served at {artifacts}.

Upgrade in this order (Elastic's recommendation): the package registry, then the stack
with Kibana, then the artifact registry, then Fleet Server, then the agents.

## Kibana

- Merge `kibana.yml` into `kibana.yml` (`/etc/kibana/kibana.yml` for the deb and rpm
  packages): Fleet stops reaching out to the internet and installs integrations from
  {registry}. It sets
{kibana_lines}{older}{pinned}- `GPG-KEY-elasticsearch` → `{key_path}`: Kibana checks package
  signatures with it.
{ca}
## Fleet (agent binary download)

{source}
## Fleet Server

- Copy `elastic-agent-upgrade-keys/default.pgp` to a folder Fleet Server reads, keeping
  mode 0600 (`install -m 0600`; Fleet Server refuses any other mode), and point
  `server.pgp.dir` at that folder, for example `{pgp_dir}` (under an Elastic
  Agent, the binary's own folder changes with every upgrade: `server.pgp.dir` stays).
  Without it, Fleet Server looks in `<fleet-server binary dir>/elastic-agent-upgrade-keys/`.
- Fleet Server serves the key at `/api/agents/upgrades/<version>/pgp-public-key` over
  TLS only (plain HTTP is refused), and agents accept a remote key over HTTPS only:
  Fleet Server must listen with TLS for agents to verify upgrades without
  artifacts.elastic.co.
{defend_text}
## Standalone agents

- Merge `elastic-agent.yml` into each agent's `elastic-agent.yml`, or upgrade with
  `elastic-agent upgrade <version> --source-uri {artifacts}`.
"""
