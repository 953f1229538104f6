"""A small multi-platform image that behaves like the package registry distribution.

It has one layer shared by every platform (package zips under /packages, as in the real
image, where they are most of the size) and one layer per platform (busybox-static, an
entrypoint, ``/health`` and ``/search`` files). Its entrypoint serves them on ``EPR_ADDRESS``
with busybox httpd, or over TLS with ``openssl s_server`` when ``EPR_TLS_CERT`` and
``EPR_TLS_KEY`` are set, as the real registry reads them. Like the real image, it
declares a health check running ``curl`` against ``localhost:8080/health``; its ``curl``
is a script doing what that check needs (busybox wget, or openssl for https). It is
written as an OCI layout by this module (independently of airgap's own code) and pushed
with skopeo.

With ``server=True`` it stands in for the server image alone
(``package-registry:v<version>``, the base of a tailored registry): no packages of its
own, and an entrypoint that, like the server since 1.38, refuses to start when a zip
under ``/packages/package-registry`` has no ``.sig`` beside it, reads every zip and
``.sig`` there (as the user it runs as, uid 1000) and serves their SHA-512s at
``/packages.txt``, its uid at ``/whoami.txt`` and the packages' names and versions at
``/search``. With ``docker_v2=True`` its documents
have Docker's v2 media types (which skopeo will not read from an OCI layout): it is
then pushed with the registry API directly.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tests.peers.processes import Credentials

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

ENTRYPOINT = """\
addr="${EPR_ADDRESS:-0.0.0.0:8080}"
if [ -n "${EPR_TLS_CERT:-}" ]; then
  cd /www || exit 1
  exec /usr/bin/openssl s_server -quiet -accept "$addr" -cert "$EPR_TLS_CERT" \\
    -key "$EPR_TLS_KEY" -WWW
fi
exec /bin/busybox httpd -f -p "$addr" -h /www
"""

# The server stand-in: the checks the real server makes of its packages at start-up.
SERVER_ENTRYPOINT = """\
addr="${EPR_ADDRESS:-0.0.0.0:8080}"
bb=/bin/busybox
$bb mkdir -p /tmp/www || exit 1
: > /tmp/www/health
: > /tmp/www/packages.txt
search="["
for zip in /packages/package-registry/*.zip; do
  [ -e "$zip" ] || continue
  if [ ! -f "$zip.sig" ]; then
    echo "package $zip has no signature file $zip.sig" >&2
    exit 1
  fi
  $bb sha512sum "$zip" "$zip.sig" >> /tmp/www/packages.txt || exit 1
  base=$($bb basename "$zip" .zip)
  name=${base%%-[0-9]*}
  [ "$search" = "[" ] || search="$search,"
  search="$search{\\"name\\":\\"$name\\",\\"version\\":\\"${base#"$name"-}\\"}"
done
echo "$search]" > /tmp/www/search
$bb id -u > /tmp/www/whoami.txt
if [ -n "${EPR_TLS_CERT:-}" ]; then
  cd /tmp/www || exit 1
  exec /usr/bin/openssl s_server -quiet -accept "$addr" -cert "$EPR_TLS_CERT" \\
    -key "$EPR_TLS_KEY" -WWW
fi
exec $bb httpd -f -p "$addr" -h /tmp/www
"""

# curl [--silent] [--fail] [--insecure] [http[s]://]HOST:PORT/PATH, for health checks.
CURL = """\
#!/bin/busybox sh
for arg in "$@"; do url="$arg"; done
case "$url" in
  https://*)
    rest="${url#https://}"; hostport="${rest%%/*}"; path="/${rest#*/}"
    printf 'GET %s HTTP/1.0\\r\\n\\r\\n' "$path" \\
      | /usr/bin/openssl s_client -quiet -connect "$hostport" 2>/dev/null \\
      | /bin/busybox head -n 1 | /bin/busybox grep -q ' 200 '
    ;;
  *) exec /bin/busybox wget -q -O /dev/null "http://${url#http://}" ;;
esac
"""
# What the real image declares (elastic/package-registry's Dockerfile).
HEALTHCHECK = {"Test": ["CMD-SHELL", "curl --silent --fail localhost:8080/health || exit 1"],
               "Interval": 1_000_000_000, "Retries": 30}


@dataclass(frozen=True)
class TestImage:
    """An OCI layout holding the image, and the digests tests check against."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    layout: Path
    tag: str
    index_digest: str
    manifests: dict[str, str]  # "linux/amd64" -> manifest digest
    shared_layers: tuple[str, ...]
    platform_layers: dict[str, str]
    docker_v2: bool = False

    @property
    def size(self) -> int:
        """Total bytes of all blobs."""
        return sum(p.stat().st_size for p in (self.layout / "blobs" / "sha256").iterdir())


class _Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def add_bytes(self, media_type: str, data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (self.blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def add_layer(self, build: list[tuple[str, bytes | Path | None, int]],
                  compress: bool, media: str | None = None) -> tuple[dict[str, object], str]:
        """Write a layer from (path in image, content, mode) entries; None = directory.

        Returns the descriptor and the diff ID (sha256 of the uncompressed tar).
        """
        tmp = self.blobs / "layer.tmp"
        diff = hashlib.sha256()
        with tmp.open("wb") as raw:
            sink = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) \
                if compress else raw
            with _HashingWriter(sink, diff) as out, \
                    tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for name, content, mode in build:
                    info = tarfile.TarInfo(name)
                    info.mtime, info.mode, info.uid, info.gid = 0, mode, 0, 0
                    if content is None:
                        info.type = tarfile.DIRTYPE
                        tar.addfile(info)
                    elif isinstance(content, Path):
                        info.size = content.stat().st_size
                        with content.open("rb") as handle:
                            tar.addfile(info, handle)
                    else:
                        info.size = len(content)
                        tar.addfile(info, io.BytesIO(content))
            if compress:
                sink.close()
        digest = _file_sha256(tmp)
        size = tmp.stat().st_size
        tmp.rename(self.blobs / digest)
        media = media or (OCI_LAYER_GZIP if compress else OCI_LAYER)
        return {"mediaType": media, "digest": f"sha256:{digest}", "size": size}, \
            f"sha256:{diff.hexdigest()}"


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _HashingWriter(io.RawIOBase):
    """Hashes what passes through on its way to ``sink``."""

    def __init__(self, sink: _Sink, digest: hashlib._Hash) -> None:
        self.sink = sink
        self.digest = digest

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.digest.update(data)
        self.sink.write(data)
        return len(data)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _random_file(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 1 << 20))
            out.write(block)
            remaining -= len(block)
    return path


def _tls_server_files() -> list[tuple[str, Path, int]]:
    """openssl and the shared libraries it loads, to serve TLS inside the image."""
    openssl = Path(shutil.which("openssl") or "/usr/bin/openssl")
    files = [("usr/bin/openssl", openssl.resolve(), 0o755)]
    ldd = subprocess.run(["ldd", str(openssl)], capture_output=True, text=True, check=True)
    for line in ldd.stdout.splitlines():
        parts = line.split()
        candidates = [p for p in parts if p.startswith("/")]
        for candidate in candidates:
            files.append((candidate.lstrip("/"), Path(candidate).resolve(), 0o755))
    return files


def _platform_layer(platform: str, entrypoint: str = ENTRYPOINT
                    ) -> list[tuple[str, bytes | Path | None, int]]:
    entries: list[tuple[str, bytes | Path | None, int]] = [
        ("bin", None, 0o755), ("www", None, 0o755), ("etc", None, 0o755),
        ("usr", None, 0o755), ("usr/bin", None, 0o755), ("tmp", None, 0o1777),
        ("bin/busybox", Path("/bin/busybox"), 0o755),
        ("www/health", b"", 0o644),
        ("www/search", b"[]\n", 0o644),  # the registry's /search: no packages here
        ("entrypoint.sh", entrypoint.encode(), 0o755),
        ("usr/bin/curl", CURL.encode(), 0o755),
        ("etc/airgap-test-platform", platform.encode() + b"\n", 0o644),
    ]
    seen_dirs = {"bin", "www", "etc", "usr", "usr/bin", "tmp"}
    for name, source, mode in _tls_server_files():
        parent = name.rsplit("/", 1)[0]
        parts = parent.split("/")
        for depth in range(1, len(parts) + 1):
            directory = "/".join(parts[:depth])
            if directory not in seen_dirs:
                seen_dirs.add(directory)
                entries.append((directory, None, 0o755))
        entries.append((name, source, mode))
    return entries


def build_test_image(root: Path, *, tag: str = "9.0.0",
                     platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
                     shared_layers: tuple[int, ...] = (1 << 20,),
                     compress: bool = True, server: bool = False,
                     docker_v2: bool = False) -> TestImage:
    """Write the image as an OCI layout at ``root``; ``shared_layers`` gives the size in
    bytes of each layer of random package data shared by every platform. ``server``
    makes the server stand-in (give it no shared layers), ``docker_v2`` Docker's media
    types."""
    types = (DOCKER_LIST, DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP) if docker_v2 \
        else (OCI_INDEX, OCI_MANIFEST, OCI_CONFIG, None)
    index_type, manifest_type, config_type, layer_type = types
    layout = _Layout(root)
    scratch = root / "scratch"
    scratch.mkdir(exist_ok=True)
    shared: list[tuple[dict[str, object], str]] = []
    for number, size in enumerate(shared_layers):
        data = _random_file(scratch / f"packages-{number}.zip", size)
        shared.append(layout.add_layer(
            [("packages", None, 0o755), ("packages/package-registry", None, 0o755),
             (f"packages/package-registry/bundle-{number}.zip", data, 0o644)], compress,
            layer_type))
        data.unlink()
    scratch.rmdir()

    index_manifests: list[dict[str, object]] = []
    manifest_digests: dict[str, str] = {}
    platform_layers: dict[str, str] = {}
    for platform in platforms:
        os_name, arch, *variant = platform.split("/")
        own, own_diff = layout.add_layer(
            _platform_layer(platform, SERVER_ENTRYPOINT if server else ENTRYPOINT), compress,
            layer_type)
        platform_layers[platform] = str(own["digest"])
        layers = [d for d, _ in shared] + [own]
        config = {
            "architecture": arch, "os": os_name,
            **({"variant": variant[0]} if variant else {}),
            "config": {
                "User": "1000", "WorkingDir": "/",
                "Env": ["PATH=/usr/bin:/bin", "EPR_ADDRESS=0.0.0.0:8080"],
                "Entrypoint": ["/bin/busybox", "sh", "/entrypoint.sh"],
                "ExposedPorts": {"8080/tcp": {}},
                "Healthcheck": HEALTHCHECK,
            },
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in shared] + [own_diff]},
            "history": [{"created_by": "airgap test image"}],
        }
        config_desc = layout.add_bytes(config_type, json.dumps(config).encode())
        manifest = {"schemaVersion": 2, "mediaType": manifest_type, "config": config_desc,
                    "layers": layers}
        desc = layout.add_bytes(manifest_type, json.dumps(manifest).encode())
        manifest_digests[platform] = str(desc["digest"])
        platform_desc: dict[str, str] = {"architecture": arch, "os": os_name}
        if variant:
            platform_desc["variant"] = variant[0]
        index_manifests.append({**desc, "platform": platform_desc})

    index = {"schemaVersion": 2, "mediaType": index_type, "manifests": index_manifests}
    index_desc = layout.add_bytes(index_type, json.dumps(index).encode())
    top = {"schemaVersion": 2, "manifests": [
        {**index_desc, "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (root / "index.json").write_text(json.dumps(top))
    return TestImage(root, tag, str(index_desc["digest"]), manifest_digests,
                     tuple(str(d["digest"]) for d, _ in shared), platform_layers, docker_v2)


def push_image(image: TestImage, registry_host: str, repository: str, *, tag: str | None = None,
               credentials: Credentials | None = None, tls_verify: bool = False) -> str:
    """Copy every platform to ``registry_host/repository:tag`` with skopeo, digests kept
    (a Docker v2 image with the registry API: skopeo reads no such OCI layout)."""
    destination = f"docker://{registry_host}/{repository}:{tag or image.tag}"
    if image.docker_v2:
        _push_with_api(image, registry_host, repository, tag or image.tag)
        return destination
    argv = ["skopeo", "copy", "--all", "--preserve-digests", "--quiet",
            f"--dest-tls-verify={'true' if tls_verify else 'false'}"]
    with tempfile.TemporaryDirectory(prefix="ag-skopeo-") as scratch:
        if credentials:
            # An auth file rather than --dest-creds: no password in argv.
            token = base64.b64encode(
                f"{credentials.username}:{credentials.password}".encode()).decode()
            authfile = Path(scratch) / "auth.json"
            authfile.write_text(json.dumps({"auths": {registry_host: {"auth": token}}}))
            argv += ["--authfile", str(authfile)]
        argv += [f"oci:{image.layout}:{image.tag}", destination]
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600)
    return destination


def _push_with_api(image: TestImage, registry_host: str, repository: str, tag: str) -> None:
    """Every blob (monolithic upload), each platform manifest by digest, the index by tag:
    the distribution API as a client uses it, no credentials, plain HTTP."""
    import httpx

    base = f"http://{registry_host}/v2/{repository}"
    blobs = image.layout / "blobs" / "sha256"
    with httpx.Client(timeout=60) as client:
        for blob in sorted(blobs.iterdir()):
            digest = f"sha256:{blob.name}"
            if client.head(f"{base}/blobs/{digest}").status_code == 200:
                continue
            started = client.post(f"{base}/blobs/uploads/")
            started.raise_for_status()
            location = str(httpx.URL(base).join(started.headers["location"]))
            separator = "&" if "?" in location else "?"
            client.put(f"{location}{separator}digest={digest}", content=blob.read_bytes(),
                       headers={"Content-Type": "application/octet-stream"}
                       ).raise_for_status()
        for digest in image.manifests.values():
            client.put(f"{base}/manifests/{digest}", content=(blobs / digest[7:]).read_bytes(),
                       headers={"Content-Type": DOCKER_MANIFEST}).raise_for_status()
        client.put(f"{base}/manifests/{tag}",
                   content=(blobs / image.index_digest[7:]).read_bytes(),
                   headers={"Content-Type": DOCKER_LIST}).raise_for_status()


def build_agent_image(root: Path, base: TestImage, *, tag: str = "9.0.0") -> TestImage:
    """A second image, standing in for docker.elastic.co/elastic-agent/elastic-agent: for
    each of ``base``'s platforms, ``base``'s shared layers (the same blobs, so a bundle
    holding both images stores them once) and a small layer of its own."""
    layout = _Layout(root)
    index = json.loads((base.layout / "index.json").read_text())["manifests"][0]
    base_index = json.loads((base.layout / "blobs/sha256" / index["digest"][7:]).read_text())
    manifests: list[dict[str, object]] = []
    digests: dict[str, str] = {}
    own_layers: dict[str, str] = {}
    for entry in base_index["manifests"]:
        platform = f"{entry['platform']['os']}/{entry['platform']['architecture']}"
        base_manifest = json.loads((base.layout / "blobs/sha256" /
                                    entry["digest"][7:]).read_text())
        base_config = json.loads((base.layout / "blobs/sha256" /
                                  base_manifest["config"]["digest"][7:]).read_text())
        shared = [layer for layer in base_manifest["layers"]
                  if layer["digest"] in base.shared_layers]
        for layer in shared:
            shutil.copyfile(base.layout / "blobs/sha256" / layer["digest"][7:],
                            layout.blobs / layer["digest"][7:])
        diff_ids = base_config["rootfs"]["diff_ids"][:len(shared)]
        own, own_diff = layout.add_layer(
            [("etc", None, 0o755),
             ("etc/elastic-agent-test", f"elastic-agent {tag} {platform}\n".encode(), 0o644)],
            compress=True)
        own_layers[platform] = str(own["digest"])
        config = {"architecture": entry["platform"]["architecture"],
                  "os": entry["platform"]["os"],
                  "config": {"User": "1000", "Entrypoint": ["/bin/busybox", "sleep", "1"]},
                  "rootfs": {"type": "layers", "diff_ids": [*diff_ids, own_diff]},
                  "history": [{"created_by": "airgap test agent image"}]}
        config_desc = layout.add_bytes(OCI_CONFIG, json.dumps(config).encode())
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc,
                    "layers": [*shared, own]}
        desc = layout.add_bytes(OCI_MANIFEST, json.dumps(manifest).encode())
        digests[platform] = str(desc["digest"])
        manifests.append({**desc, "platform": entry["platform"]})
    index_desc = layout.add_bytes(OCI_INDEX, json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode())
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**index_desc, "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return TestImage(root, tag, str(index_desc["digest"]), digests, base.shared_layers,
                     own_layers)
