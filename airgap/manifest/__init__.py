"""The first stage: a manifest, read strictly from YAML, and the plan it comes to: every
item a fetch will get, and why, without touching the network.
"""

from airgap.manifest.model import Manifest, load_manifest, parse_manifest
from airgap.manifest.plan import ArtifactItem, ImageItem, PackageItem, Plan, make_plan

__all__ = ["ArtifactItem", "ImageItem", "Manifest", "PackageItem", "Plan", "load_manifest",
           "make_plan", "parse_manifest"]
