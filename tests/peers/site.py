"""All of Elastic's public endpoints on loopback at once, for the demo and benchmarks.

A real docker-registry holding the multi-platform test image as
``package-registry/distribution``, a second image sharing its large layer as
``elastic-agent/elastic-agent`` and the server stand-in (the base of a tailored registry)
as ``package-registry/package-registry:v<pinned>``, the artifacts.elastic.co, EPR and
artifacts.security.elastic.co stand-ins, with everything signed by one throwaway key.
``publish_plan`` puts on the stand-ins exactly what a manifest's plan will ask for.
"""

from __future__ import annotations

from pathlib import Path

from airgap import package_registry
from airgap.manifest import load_manifest
from airgap.manifest.plan import make_plan
from tests.peers.artifacts import ArtifactServer
from tests.peers.defend import DefendServer
from tests.peers.epr import EprServer
from tests.peers.gpgkeys import SigningKey
from tests.peers.images import TestImage, build_agent_image, build_test_image, push_image
from tests.peers.processes import DockerRegistry

REPOSITORY = "package-registry/distribution"
SERVER_REPOSITORY = "package-registry/package-registry"
AGENT_REPOSITORY = "elastic-agent/elastic-agent"


class LoopbackElastic:
    """The three sources a fetch reads, started together."""

    def __init__(self, workdir: Path, *, tag: str = "9.0.0",
                 shared_layers: tuple[int, ...] = (4 << 20,)) -> None:
        self.workdir = workdir
        self.tag = tag
        self.shared_layers = shared_layers
        workdir.mkdir(parents=True, exist_ok=True)
        self.signer = SigningKey("airgap demo signer", "demo@example.test")
        self.public_key = self.signer.export_public(workdir / "demo-signer.asc")
        self.registry = DockerRegistry(workdir / "registry")
        self.artifacts = ArtifactServer(workdir / "artifacts", self.signer)
        self.epr = EprServer(workdir / "epr", self.signer)
        self.defend = DefendServer(workdir / "defend")
        self.image: TestImage | None = None
        self.server: TestImage | None = None

    def start(self) -> LoopbackElastic:
        """Start every peer and push the test image."""
        self.registry.start()
        self.artifacts.start()
        self.epr.start()
        self.defend.start()
        self.image = build_test_image(self.workdir / "image", tag=self.tag,
                                      shared_layers=self.shared_layers)
        push_image(self.image, self.registry.host, REPOSITORY)
        self.server = build_test_image(self.workdir / "server",
                                       tag=f"v{package_registry.PACKAGE_REGISTRY_VERSION}",
                                       shared_layers=(), server=True)
        push_image(self.server, self.registry.host, SERVER_REPOSITORY)
        agent = build_agent_image(self.workdir / "agent-image", self.image, tag=self.tag)
        push_image(agent, self.registry.host, AGENT_REPOSITORY)
        return self

    def stop(self) -> None:
        """Stop every peer."""
        self.defend.stop()
        self.epr.stop()
        self.artifacts.stop()
        self.registry.stop()
        self.signer.close()

    def manifest_text(self, *, arch: tuple[str, ...] = ("x86_64", "arm64"),
                      integrations: tuple[str, ...] = ("system", "nginx", "fleet_server",
                                                       "endpoint"),
                      flavor: str = "full", images: tuple[str, ...] = ()) -> str:
        """A manifest that reads every source from these peers."""
        return "\n".join([
            "apiVersion: airgap/v1",
            "kind: Bundle",
            "stack:",
            f"  version: {self.tag}",
            "platforms:",
            "  os: [linux]",
            f"  arch: [{', '.join(arch)}]",
            "  formats: [archive]",
            "registry:",
            f"  flavor: {flavor}",
            f"integrations: [{', '.join(integrations)}]",
            f"images: [{', '.join(images)}]",
            "sources:",
            f"  registry: {self.registry.url}",
            f"  artifacts: {self.artifacts.url}",
            f"  epr: {self.epr.url}",
            f"  security: {self.defend.url}",
            "trust:",
            f"  keys: [{self.public_key}]",
            "",
        ])

    def publish_plan(self, manifest: Path, *, artifact_size: int = 256 << 10,
                     package_size: int = 2048) -> None:
        """Publish every artifact and package the manifest's plan names (each package in
        two versions of about ``package_size`` bytes)."""
        plan = make_plan(load_manifest(manifest))
        for item in plan.artifacts:
            self.artifacts.publish(item.path, artifact_size)
        known = {p.name for p in self.epr.packages}
        for package in plan.packages:
            if package.name not in known:
                self.epr.add(package.name, "1.0.0", payload=package_size)
                self.epr.add(package.name, "2.0.0", payload=package_size)
        for defend in plan.defend:
            self.defend.publish(defend.endpoint_version, "1.0.42", {
                f"{name}-v1": name.encode() * 20_000
                for name in ("production-rules-linux", "production-rules-windows",
                             "diagnostic-configuration")})
