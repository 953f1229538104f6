"""Which of the bundle's images a command means.

A bundle holds the package registry image and the images its manifest added
(``images``), all in one OCI layout. ``--image`` names some of them: by full reference,
by repository (with or without its host), or by a name airgap knows (``elastic-agent``).
Light on imports: ``export-image`` uses it too.
"""

from __future__ import annotations

from collections.abc import Sequence

from airgap import elastic
from airgap.bundle.description import BundleDescription
from airgap.errors import UsageError, setting
from airgap.oci.reference import parse_reference


def _matches(name: str, reference: str) -> bool:
    parsed = parse_reference(reference)
    wanted = elastic.KNOWN_IMAGES.get(name, name)
    return wanted in (reference, parsed.name, parsed.repository)


def select_images(description: BundleDescription, names: Sequence[str]) -> list[str]:
    """The references ``names`` mean, in the bundle's order (every image when ``names``
    is empty); a :class:`UsageError` for a name that means none or several."""
    references = [image.reference for image in description.all_images]
    if not names:
        return references
    chosen: set[str] = set()
    for name in names:
        found = [r for r in references if _matches(name, r)]
        if len(found) != 1:
            what = "no image" if not found else f"{len(found)} images ({', '.join(found)})"
            raise UsageError(f"{setting('images')} {name!r}: the bundle has {what} by that "
                             f"name", details=[f"its images: {', '.join(references)}"])
        chosen.add(found[0])
    return [r for r in references if r in chosen]
