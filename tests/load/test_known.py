"""Digests ``airgap serve`` need not compute: bundle.json's, and the index ``load
--artifacts`` writes beside the tree, each used only for a file that cannot have changed
since (a restart of the server does not hash gigabytes again).

The proof that a tag came from the record and not from hashing: a file's bytes changed
behind its back with its size and modification time kept. Its tag is still the
recorded digest; once its modification time moves, the new bytes are hashed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import httpx

from airgap.load.known import INDEX
from tests.peers.serving import serve, stop
from tests.terminal import in_pipe

AGENT = "beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"
MANIFEST = "endpoint/manifest/artifacts-9.0.0.zip"


def changed_behind_its_back(path: Path) -> bytes:
    """Other bytes of the same size, the modification time put back."""
    info = path.stat()
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    return bytes(data)


def tag_of(data: bytes) -> str:
    return f'"{hashlib.sha512(data).hexdigest()}"'


def test_a_tree_load_laid_out_is_served_with_the_digests_it_recorded(
        rich_bundle: Path, operator_key: Path, tmp_path: Path) -> None:
    served = tmp_path / "served"
    loaded = in_pipe("load", str(rich_bundle), "--trust-key", str(operator_key),
                     "--artifacts", str(served))
    assert loaded.returncode == 0, loaded.stderr
    index = json.loads((served / INDEX).read_text())["files"]
    assert {AGENT, MANIFEST} <= set(index)
    recorded = (rich_bundle / "downloads" / AGENT).read_bytes()
    manifest = (served / MANIFEST).read_bytes()
    changed = changed_behind_its_back(served / AGENT)
    process, port = serve(served)
    base = f"http://127.0.0.1:{port}/downloads/"
    try:
        assert httpx.head(base + AGENT).headers["etag"] == tag_of(recorded)
        assert httpx.head(base + MANIFEST).headers["etag"] == tag_of(manifest)
        assert httpx.get(base + INDEX).status_code == 404  # airgap's own, never served
        os.utime(served / AGENT)  # now it may have changed: hashed
        assert httpx.head(base + AGENT).headers["etag"] == tag_of(changed)
    finally:
        stop(process)


def test_a_second_load_keeps_what_the_index_knew_of_older_files(
        rich_bundle: Path, operator_key: Path, tmp_path: Path) -> None:
    served = tmp_path / "served"
    older = served / "beats/elastic-agent/elastic-agent-8.19.0-linux-x86_64.tar.gz"
    older.parent.mkdir(parents=True)
    older.write_bytes(b"an older agent")
    info = older.stat()
    (served / INDEX).write_text(json.dumps({"format": 1, "files": {
        older.relative_to(served).as_posix(): {
            "size": info.st_size, "mtime_ns": info.st_mtime_ns,
            "sha512": hashlib.sha512(b"an older agent").hexdigest()},
        "gone.tar.gz": {"size": 1, "mtime_ns": 1, "sha512": "0" * 128}}}))
    assert in_pipe("load", str(rich_bundle), "--trust-key", str(operator_key),
                   "--artifacts", str(served)).returncode == 0
    files = json.loads((served / INDEX).read_text())["files"]
    assert older.relative_to(served).as_posix() in files and AGENT in files
    assert "gone.tar.gz" not in files


def test_a_bundle_is_served_with_bundle_json_digests_for_files_older_than_it(
        rich_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(rich_bundle, bundle)  # copy2: the files keep their times
    agent = bundle / "downloads" / AGENT
    recorded = agent.read_bytes()
    changed = changed_behind_its_back(agent)
    # Verified, the changed bundle would not be served at all: this is about the digests.
    process, port = serve(bundle, "--skip-verify")
    base = f"http://127.0.0.1:{port}/downloads/"
    try:
        assert httpx.head(base + AGENT).headers["etag"] == tag_of(recorded)
        os.utime(agent)  # modified after bundle.json: hashed
        assert httpx.head(base + AGENT).headers["etag"] == tag_of(changed)
    finally:
        stop(process)


def test_a_damaged_index_only_means_hashing(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "beats/elastic-agent").mkdir(parents=True)
    (tree / AGENT).write_bytes(b"agent")
    (tree / INDEX).write_text("{not json")
    process, port = serve(tree)
    try:
        answer = httpx.head(f"http://127.0.0.1:{port}/downloads/{AGENT}")
        assert answer.status_code == 200 and answer.headers["etag"] == tag_of(b"agent")
    finally:
        err = stop(process)
    assert "Traceback" not in err
