"""Container images: OCI and Docker v2 documents, references, the OCI layout on disk.

Shared by the stages that pull an image (fetch) and load or push it (load). The registry
client (``airgap.oci.registry``) and the docker-loadable tar (``airgap.oci.dockertar``)
are imported from their modules: the first brings in the HTTP stack.
"""

from airgap.oci.layout import (
    Layout,
    PlatformSelection,
    image_platforms,
    named_images,
    select_platform,
)
from airgap.oci.media import (
    ACCEPT_MANIFESTS,
    CONTAINERD_NAME,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    REF_NAME,
    Descriptor,
    ImageManifest,
    digest_hex,
    index_entries,
    load_json,
    parse_descriptor,
    parse_image_manifest,
    sha256_digest,
)
from airgap.oci.platform import Platform
from airgap.oci.reference import ImageReference, docker_tag, parse_reference

__all__ = [
    "ACCEPT_MANIFESTS", "CONTAINERD_NAME", "DOCKER_LIST", "DOCKER_MANIFEST", "INDEX_TYPES",
    "MANIFEST_TYPES", "MAX_MANIFEST_SIZE", "OCI_INDEX", "OCI_MANIFEST", "REF_NAME",
    "Descriptor", "ImageManifest", "ImageReference", "Layout", "Platform",
    "PlatformSelection", "digest_hex", "docker_tag", "image_platforms", "index_entries",
    "load_json", "named_images", "parse_descriptor", "parse_image_manifest", "parse_reference",
    "select_platform", "sha256_digest",
]
