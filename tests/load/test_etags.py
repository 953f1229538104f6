"""Content ETags while other requests go on: a large file is hashed once however many ask
for it, on a pool of its own, and a small answer (an endpoint's manifest) never waits for
that hash. ``airgap serve`` runs as a person runs it, in a process of its own; what it
reads is counted from /proc, the order of the answers observed, never timed."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import httpx

from tests.peers.net import wait_until
from tests.peers.serving import serve, stop

#: Large enough that hashing it takes seconds: a sparse file, no disk used.
BIG = 1536 << 20
BIG_PATH = "beats/elastic-agent/elastic-agent-9.0.0-windows-x86_64.zip"
MANIFEST = "endpoint/manifest/artifacts-9.0.0.zip"


def bytes_read(pid: int) -> int:
    """What the process has read so far (``rchar``: files and sockets alike)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/<pid>/io")


def test_a_small_answer_comes_while_a_large_file_is_hashed_once_for_everyone(
        tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    big = tree / BIG_PATH
    big.parent.mkdir(parents=True)
    with big.open("wb") as handle:
        handle.truncate(BIG)
    manifest = tree / MANIFEST
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes(os.urandom(1024))
    process, port = serve(tree)
    base = f"http://127.0.0.1:{port}/downloads/"
    answers: dict[int, tuple[float, httpx.Response]] = {}

    def ask(number: int) -> None:
        answer = httpx.head(base + BIG_PATH, timeout=300)
        answers[number] = (time.monotonic(), answer)

    try:
        before = bytes_read(process.pid)
        askers = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
        for asker in askers:
            asker.start()
        # The large file is being hashed: only then is the manifest asked for.
        wait_until(lambda: bytes_read(process.pid) - before > 64 << 20, 120,
                   "the large file's hash under way")
        small = httpx.get(base + MANIFEST, timeout=300)
        small_done = time.monotonic()
        for asker in askers:
            asker.join(timeout=300)
        read = bytes_read(process.pid) - before
    finally:
        stop(process)
    assert small.status_code == 200 and small.content == manifest.read_bytes()
    assert len(answers) == 8 and {a.status_code for _, a in answers.values()} == {200}
    assert small_done < min(done for done, _ in answers.values()), \
        "the manifest's answer waited for the large file's hash"
    assert len({a.headers["etag"] for _, a in answers.values()}) == 1
    assert read < 2 * BIG, f"the large file was read {read / BIG:.1f} times, not once"


def test_a_hash_in_progress_does_not_hold_up_the_end(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    big = tree / BIG_PATH
    big.parent.mkdir(parents=True)
    with big.open("wb") as handle:
        handle.truncate(4 * BIG)  # seconds of hashing
    process, port = serve(tree)
    answers: list[int | str] = []

    def ask() -> None:
        try:
            answers.append(httpx.head(f"http://127.0.0.1:{port}/downloads/{BIG_PATH}",
                                      timeout=300).status_code)
        except httpx.TransportError as exc:  # the connection closed as the server ended
            answers.append(type(exc).__name__)

    asker = threading.Thread(target=ask)
    before = bytes_read(process.pid)
    asker.start()
    wait_until(lambda: bytes_read(process.pid) - before > 64 << 20, 120,
               "the large file's hash under way")
    read = 0

    def watch() -> None:  # what the server read, up to its last moment
        nonlocal read
        with contextlib.suppress(OSError, AssertionError):
            while process.poll() is None:
                read = bytes_read(process.pid) - before

    watcher = threading.Thread(target=watch)
    watcher.start()
    err = stop(process)  # SIGTERM: the hash gives up, the server ends
    watcher.join(timeout=60)
    asker.join(timeout=60)
    assert "Traceback" not in err, err
    assert read < 4 * BIG, "the server hashed the whole file before it stopped"
    assert len(answers) == 1 and answers[0] != 200, answers
