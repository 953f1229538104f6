"""What the tests of merge, split and join share (tests/carry/, the kill and terminal
tests): a bundle with a signed delta of it, and the golden bundle split into volumes
(signed), each made once per session (a plugin of tests/conftest.py). Copy before
changing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from airgap.cli import main
from airgap.fetch.run import FetchSettings, fetch
from airgap.manifest import load_manifest
from airgap.manifest.plan import make_plan
from airgap.reporter import NullReporter
from tests.conftest import DEFEND_ARTIFACTS
from tests.peers.artifacts import ArtifactServer
from tests.peers.defend import DefendServer
from tests.peers.epr import EprServer
from tests.peers.gpgkeys import SigningKey
from tests.peers.images import TestImage
from tests.peers.processes import DockerRegistry


def read_report(text: str) -> dict[str, Any]:
    """A command's ``--json`` envelope as one report: its result, problems and warnings."""
    document = json.loads(text)
    return {**document["result"], "problems": document["problems"],
            "warnings": document["warnings"]}


#: The golden bundle's volumes: 1 MiB each, no file over 256 KiB.
VOLUME_SIZE = 1 << 20
MAX_FILE = 256 << 10


@dataclass(frozen=True)
class Pair:
    """A bundle, a signed delta of it, and the same manifest re-fetched after a change."""

    base: Path
    delta: Path
    refetched: Path


def _manifest(path: Path, registry: DockerRegistry, artifacts: ArtifactServer,
              epr: EprServer, defend: DefendServer, key: Path, integrations: list[str]
              ) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "airgap/v1", "kind": "Bundle", "stack": {"version": "9.0.0"},
        "platforms": {"arch": ["x86_64"]}, "integrations": integrations,
        "sources": {"registry": registry.url, "artifacts": artifacts.url, "epr": epr.url,
                    "security": defend.url},
        "trust": {"keys": [str(key)]}}))
    return path


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory, signer: SigningKey,
         signer_public_key: Path, pushed_image: TestImage, registry: DockerRegistry,
         operator: SigningKey) -> Iterator[Pair]:
    work = tmp_path_factory.mktemp("pair")
    artifacts = ArtifactServer(work / "artifacts", signer).start()
    epr = EprServer(work / "epr", signer).start()
    defend = DefendServer(work / "defend").start()
    try:
        epr.add("nginx", "2.0.0")
        epr.add("endpoint", "9.0.0")
        defend.publish("9.0.0", "1.0.137", DEFEND_ARTIFACTS)
        before = _manifest(work / "before.yaml", registry, artifacts, epr, defend,
                           signer_public_key, ["nginx"])
        after = _manifest(work / "after.yaml", registry, artifacts, epr, defend,
                          signer_public_key, ["nginx", "endpoint"])
        for item in make_plan(load_manifest(after)).artifacts:
            artifacts.publish(item.path, 30_000)
        sign = {"sign_with": operator.fingerprint, "gnupg_home": operator.home}
        base, delta, refetched = work / "base", work / "delta", work / "refetched"
        fetch(FetchSettings(before, base, **sign), NullReporter())
        fetch(FetchSettings(after, delta, since=base, **sign), NullReporter())
        # Upstream changed a binary since: the same manifest fetched again differs.
        artifacts.publish(make_plan(load_manifest(before)).artifacts[0].path, 30_000)
        fetch(FetchSettings(before, refetched, **sign), NullReporter())
        yield Pair(base, delta, refetched)
    finally:
        artifacts.stop()
        epr.stop()
        defend.stop()


@pytest.fixture(scope="session")
def golden_volumes(golden_bundle: Path, operator: SigningKey,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden bundle split into volumes of VOLUME_SIZE, the index signed."""
    parts = tmp_path_factory.mktemp("volumes") / "parts"
    code = main(["split", str(golden_bundle), "-o", str(parts), "--size", str(VOLUME_SIZE),
                 "--max-file", str(MAX_FILE), "--sign-with", operator.fingerprint,
                 "--gnupg-home", str(operator.home), "--quiet"])
    assert code == 0
    return parts
