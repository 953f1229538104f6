"""The download engine against the artifact stand-in, with every fault it can inject."""

from __future__ import annotations

import hashlib
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airgap.errors import (
    ChecksumMismatchError,
    ManyErrors,
    NetworkError,
    NotFoundError,
    ServerResponseError,
    VerificationError,
)
from airgap.net.download import Download, Downloader
from airgap.net.transport import NetworkSettings, make_client
from airgap.reporter import NullReporter
from airgap.trust.digests import Digests
from tests.peers.artifacts import ArtifactServer
from tests.peers.files import Fault
from tests.reporting import RecordingReporter

FILE = "beats/filebeat/filebeat-9.0.0-linux-x86_64.tar.gz"
FAST = NetworkSettings(read_timeout=1.0, retries=4, backoff_initial=0.01, backoff_max=0.05,
                       jobs=4)


@pytest.fixture
def downloader() -> Iterator[Downloader]:
    with make_client(FAST) as client:
        yield Downloader(client, FAST, RecordingReporter())


def published(server: ArtifactServer, size: int, path: str = FILE) -> tuple[str, bytes]:
    source = server.publish(path, size)
    return server.url + path, source.read_bytes()


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def test_download_streams_to_final_name_with_digests(downloader: Downloader, tmp_path: Path,
                                                     artifact_server: ArtifactServer) -> None:
    url, data = published(artifact_server, 300_000)
    dest = tmp_path / "out" / "file.tar.gz"
    fetched = downloader.fetch(Download(url, dest, "file", sha256=hashlib.sha256(data).hexdigest()))
    assert dest.read_bytes() == data
    assert fetched.digests == Digests(len(data), sha512(data), hashlib.sha256(data).hexdigest())
    assert not fetched.reused
    assert not dest.with_name("file.tar.gz.part").exists()


# Bodies of a MiB and more are read from the socket directly (airgap.net.body), smaller ones
# through httpx: the faults below are tried on both sides of that line.
SIZES = pytest.mark.parametrize("size", [1_000_000, 3_000_000], ids=["httpx", "direct"])


@SIZES
@pytest.mark.parametrize("kind", ["drop", "truncate"])
def test_broken_transfer_resumes_with_range(downloader: Downloader, tmp_path: Path,
                                            artifact_server: ArtifactServer, kind: str,
                                            size: int) -> None:
    url, data = published(artifact_server, size)
    artifact_server.faults.inject(f"*{Path(FILE).name}", Fault(kind, after=size * 2 // 5))
    fetched = downloader.fetch(Download(url, tmp_path / "f", "f", size=len(data)))
    assert fetched.digests.sha512 == sha512(data)
    log = artifact_server.faults.requests(f"*{Path(FILE).name}")
    assert [r.fault for r in log] == [kind, None]
    resumed_at = int(log[1].range.removeprefix("bytes=").rstrip("-"))  # type: ignore[union-attr]
    assert 0 < resumed_at <= size * 2 // 5


@SIZES
def test_server_ignoring_range_restarts_cleanly(downloader: Downloader, tmp_path: Path,
                                                artifact_server: ArtifactServer,
                                                size: int) -> None:
    url, data = published(artifact_server, size)
    name = f"*{Path(FILE).name}"
    artifact_server.faults.inject(name, Fault("drop", after=size * 2 // 5))
    artifact_server.faults.inject(name, Fault("ignore_range"))
    reporter = RecordingReporter()
    restarts: list[int] = []
    reporter.task_restarted = lambda key, completed: restarts.append(completed)  # type: ignore[method-assign]
    downloader.reporter = reporter
    fetched = downloader.fetch(Download(url, tmp_path / "f", "f"))
    assert fetched.digests.sha512 == sha512(data)
    assert (tmp_path / "f").read_bytes() == data
    assert [r.fault for r in artifact_server.faults.requests(name)] == ["drop", "ignore_range"]
    assert restarts == [0]


def test_5xx_burst_is_retried_honouring_retry_after(downloader: Downloader, tmp_path: Path,
                                                    artifact_server: ArtifactServer) -> None:
    url, data = published(artifact_server, 10_000)
    name = f"*{Path(FILE).name}"
    artifact_server.faults.inject(name, Fault("status", times=2, status=503))
    artifact_server.faults.inject(name, Fault("status", times=1, status=429, retry_after="1"))
    started = time.monotonic()
    fetched = downloader.fetch(Download(url, tmp_path / "f", "f"))
    assert time.monotonic() - started >= 1.0
    assert fetched.digests.sha512 == sha512(data)
    assert len(artifact_server.faults.requests(name)) == 4


def test_persistent_5xx_gives_up_and_keeps_nothing(downloader: Downloader, tmp_path: Path,
                                                   artifact_server: ArtifactServer) -> None:
    url, _ = published(artifact_server, 10_000)
    artifact_server.faults.inject(f"*{Path(FILE).name}", Fault("status", times=-1, status=500))
    with pytest.raises(NetworkError, match=r"server answered 500.*gave up after 4 retries"):
        downloader.fetch(Download(url, tmp_path / "f", "f"))
    assert not (tmp_path / "f").exists()


@SIZES
def test_stalled_server_times_out_then_recovers(downloader: Downloader, tmp_path: Path,
                                                artifact_server: ArtifactServer,
                                                size: int) -> None:
    url, data = published(artifact_server, size)
    artifact_server.faults.inject(f"*{Path(FILE).name}",
                                  Fault("stall", after=size * 2 // 5, delay=30))
    started = time.monotonic()
    fetched = downloader.fetch(Download(url, tmp_path / "f", "f"))
    assert time.monotonic() - started < 10
    assert fetched.digests.sha512 == sha512(data)


def test_server_stalled_for_good_fails_with_timeout(tmp_path: Path,
                                                   artifact_server: ArtifactServer) -> None:
    url, _ = published(artifact_server, 200_000)
    artifact_server.faults.inject(f"*{Path(FILE).name}",
                                  Fault("stall", times=-1, after=1000, delay=30))
    settings = NetworkSettings(read_timeout=0.3, retries=1, backoff_initial=0.01)
    with make_client(settings) as client, pytest.raises(NetworkError, match="timed out"):
        Downloader(client, settings, RecordingReporter()).fetch(Download(url, tmp_path / "f", "f"))
    assert not (tmp_path / "f").exists()


def test_wrong_digest_is_rejected_and_never_named_complete(downloader: Downloader,
                                                           tmp_path: Path,
                                                           artifact_server: ArtifactServer) -> None:
    url, data = published(artifact_server, 100_000)
    artifact_server.faults.inject(f"*{Path(FILE).name}", Fault("corrupt", times=-1))
    item = Download(url, tmp_path / "blob", "blob", size=len(data),
                    sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(ChecksumMismatchError, match="digest mismatch"):
        downloader.fetch(item)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("size", "max_size", "message"), [
    (1000, None, "announces 100000 bytes, but 1000 are expected"),
    (None, 5000, "announces 100000 bytes, more than the 5000 allowed"),
])
def test_size_limits_refuse_hostile_answers(downloader: Downloader, tmp_path: Path,
                                            artifact_server: ArtifactServer, size: int | None,
                                            max_size: int | None, message: str) -> None:
    url, _ = published(artifact_server, 100_000)
    item = Download(url, tmp_path / "f", "f", size=size, max_size=max_size or 1 << 40)
    with pytest.raises(ServerResponseError, match=message):
        downloader.fetch(item)
    assert list(tmp_path.iterdir()) == []


def test_html_page_instead_of_a_file_is_refused(downloader: Downloader, tmp_path: Path,
                                                artifact_server: ArtifactServer) -> None:
    url, _ = published(artifact_server, 1000)
    artifact_server.faults.inject(f"*{Path(FILE).name}", Fault("html"))
    with pytest.raises(ServerResponseError, match="HTML page instead of the file"):
        downloader.fetch(Download(url, tmp_path / "f", "f"))


def test_not_found_is_not_retried(downloader: Downloader, tmp_path: Path,
                                  artifact_server: ArtifactServer) -> None:
    with pytest.raises(NotFoundError, match="not found"):
        downloader.fetch(Download(artifact_server.url + "beats/none.tar.gz", tmp_path / "f", "f"))
    assert len(artifact_server.faults.requests("*none.tar.gz")) == 1


def test_redirect_to_another_host_drops_credentials(downloader: Downloader, tmp_path: Path,
                                                    artifact_server: ArtifactServer) -> None:
    url, data = published(artifact_server, 5000)
    artifact_server.redirect = True

    class Token:
        def headers_for(self, target: httpx.URL) -> dict[str, str]:
            return {"Authorization": "Bearer secret-token"}

        def handle_challenge(self, response: httpx.Response) -> bool:
            return False

    fetched = downloader.fetch(Download(url, tmp_path / "f", "f", auth=Token()))
    assert fetched.digests.sha512 == sha512(data)
    first, second = artifact_server.faults.requests(f"*{Path(FILE).name}")
    assert first.path.startswith("/downloads/") and first.authorization == "Bearer secret-token"
    assert not second.path.startswith("/downloads/") and second.authorization is None


def test_check_failure_removes_the_part(downloader: Downloader, tmp_path: Path,
                                        artifact_server: ArtifactServer) -> None:
    url, _ = published(artifact_server, 5000)

    def refuse(part: Path, digests: Digests) -> None:
        assert part.name.endswith(".part") and part.stat().st_size == digests.size
        raise VerificationError("refused by the check")

    with pytest.raises(VerificationError, match="refused by the check"):
        downloader.fetch(Download(url, tmp_path / "f", "f", check=refuse))
    assert list(tmp_path.iterdir()) == []


def test_verified_file_is_reused_without_a_request(downloader: Downloader, tmp_path: Path,
                                                   artifact_server: ArtifactServer) -> None:
    url, data = published(artifact_server, 50_000)
    item = Download(url, tmp_path / "f", "f", sha256=hashlib.sha256(data).hexdigest())
    downloader.fetch(item)
    again = downloader.fetch(item)
    assert again.reused and again.digests.sha512 == sha512(data)
    assert len(artifact_server.faults.requests(f"*{Path(FILE).name}")) == 1
    # A copy altered since is not trusted: it is fetched again.
    (tmp_path / "f").write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    third = downloader.fetch(item)
    assert not third.reused and (tmp_path / "f").read_bytes() == data


def test_part_left_by_an_interrupted_run_is_resumed(downloader: Downloader, tmp_path: Path,
                                                    artifact_server: ArtifactServer) -> None:
    url, data = published(artifact_server, 300_000)
    (tmp_path / "f.part").write_bytes(data[:123_456])
    fetched = downloader.fetch(Download(url, tmp_path / "f", "f", size=len(data)))
    assert fetched.digests.sha512 == sha512(data)
    (log,) = artifact_server.faults.requests(f"*{Path(FILE).name}")
    assert log.range == "bytes=123456-"


def test_fetch_all_runs_in_parallel_and_lists_every_failure(downloader: Downloader,
                                                            tmp_path: Path,
                                                            artifact_server: ArtifactServer
                                                            ) -> None:
    items = []
    for n in range(6):
        path = f"beats/filebeat/f{n}.tar.gz"
        url, _ = published(artifact_server, 20_000, path)
        items.append(Download(url, tmp_path / f"f{n}", f"f{n}"))
    items.append(Download(artifact_server.url + "missing/a.tar.gz", tmp_path / "a", "a"))
    items.append(Download(artifact_server.url + "missing/b.tar.gz", tmp_path / "b", "b"))
    with pytest.raises(ManyErrors) as caught:
        downloader.fetch_all(items)
    assert caught.value.message == "2 of 8 downloads failed"
    assert any("missing/a.tar.gz" in line for line in caught.value.details)
    assert any("missing/b.tar.gz" in line for line in caught.value.details)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"f{n}" for n in range(6)]


def test_memory_stays_flat_for_a_large_file(downloader: Downloader, tmp_path: Path,
                                            artifact_server: ArtifactServer) -> None:
    url, data = published(artifact_server, 64 << 20)
    tracemalloc.start()
    try:
        fetched = downloader.fetch(Download(url, tmp_path / "big", "big"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fetched.digests.sha512 == sha512(data)
    assert peak < 4 << 20, f"peak Python allocation {peak} bytes for a 64 MiB download"


# -- resuming files of unknown size ------------------------------------------------------


def test_stand_in_answers_416_with_the_total_like_object_stores(
        artifact_server: ArtifactServer) -> None:
    url, data = published(artifact_server, 10_000)
    for fault in (None, Fault("slow")):  # both of serve_file's paths
        if fault is not None:
            artifact_server.faults.inject(f"*{Path(FILE).name}", fault)
        answer = httpx.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert answer.status_code == 416
        assert answer.headers["content-range"] == f"bytes */{len(data)}"


def test_complete_part_of_unknown_size_is_taken_on_416(downloader: Downloader, tmp_path: Path,
                                                       artifact_server: ArtifactServer) -> None:
    url, data = published(artifact_server, 100_000)
    (tmp_path / "f.part").write_bytes(data)
    item = Download(url, tmp_path / "f", "f", sha256=hashlib.sha256(data).hexdigest())
    fetched = downloader.fetch(item)
    assert fetched.digests.sha512 == sha512(data) and not fetched.reused
    assert (tmp_path / "f").read_bytes() == data and not (tmp_path / "f.part").exists()
    (log,) = artifact_server.faults.requests(f"*{Path(FILE).name}")
    assert log.range == f"bytes={len(data)}-"


def test_complete_part_taken_on_416_must_still_pass_the_checks(
        downloader: Downloader, tmp_path: Path, artifact_server: ArtifactServer) -> None:
    url, data = published(artifact_server, 100_000)
    (tmp_path / "f.part").write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    item = Download(url, tmp_path / "f", "f", sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(ChecksumMismatchError, match="digest mismatch"):
        downloader.fetch(item)
    assert list(tmp_path.iterdir()) == []


def test_part_longer_than_a_file_of_unknown_size_starts_over(
        downloader: Downloader, tmp_path: Path, artifact_server: ArtifactServer) -> None:
    url, data = published(artifact_server, 100_000)
    (tmp_path / "f.part").write_bytes(data + b"left over from another version")
    fetched = downloader.fetch(Download(url, tmp_path / "f", "f"))
    assert fetched.digests.sha512 == sha512(data)
    assert [r.range for r in artifact_server.faults.requests(f"*{Path(FILE).name}")] == \
        [f"bytes={len(data) + 30}-", None]


@pytest.mark.parametrize("known_size", [False, True])
def test_short_206_is_not_the_end_of_the_file(downloader: Downloader, tmp_path: Path,
                                              artifact_server: ArtifactServer,
                                              known_size: bool) -> None:
    url, data = published(artifact_server, 300_000)
    name = f"*{Path(FILE).name}"
    artifact_server.faults.inject(name, Fault("short_range", after=50_000))
    (tmp_path / "f.part").write_bytes(data[:100_000])
    item = Download(url, tmp_path / "f", "f", size=len(data) if known_size else None)
    fetched = downloader.fetch(item)
    assert fetched.digests.sha512 == sha512(data)
    assert (tmp_path / "f").read_bytes() == data
    log = artifact_server.faults.requests(name)
    assert [(r.range, r.fault) for r in log] == [("bytes=100000-", "short_range"),
                                                ("bytes=150000-", None)]


@pytest.mark.parametrize("how", ["file", "document"])
def test_cancel_ends_the_wait_between_retries(artifact_server: ArtifactServer,
                                              tmp_path: Path, how: str) -> None:
    # Files go through fetch(); API answers, manifests and tokens through fetch_small().
    url, _ = published(artifact_server, 1000)
    artifact_server.faults.inject(f"*{Path(FILE).name}",
                                  Fault("status", status=503, retry_after="30", times=-1))
    patient = NetworkSettings(retries=3, retry_after_max=60.0)
    with make_client(patient) as client:
        downloader = Downloader(client, patient, NullReporter())
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                if how == "file":
                    downloader.fetch(Download(url, tmp_path / "f", "f"))
                else:
                    downloader.fetch_small(url)
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not artifact_server.faults.log:
            time.sleep(0.01)
        time.sleep(0.2)  # now waiting out the 30 s Retry-After
        cancelled = time.monotonic()
        downloader.cancel()
        worker.join(timeout=10)
    assert time.monotonic() - cancelled < 2
    assert len(outcome) == 1 and isinstance(outcome[0], KeyboardInterrupt)


def test_ranges_capped_by_the_server_are_followed_without_retries(
        tmp_path: Path, artifact_server: ArtifactServer) -> None:
    url, data = published(artifact_server, 300_000)
    name = f"*{Path(FILE).name}"
    artifact_server.faults.inject(name, Fault("short_range", times=-1, after=50_000))
    (tmp_path / "f.part").write_bytes(data[:100_000])
    strict = NetworkSettings(retries=0)
    reporter = RecordingReporter()
    with make_client(strict) as client:
        Downloader(client, strict, reporter).fetch(Download(url, tmp_path / "f", "f"))
    assert (tmp_path / "f").read_bytes() == data
    assert [r.range for r in artifact_server.faults.requests(name)] == [
        "bytes=100000-", "bytes=150000-", "bytes=200000-", "bytes=250000-"]
    assert reporter.messages == [], "a complete range was taken for a failure"


def test_drops_after_real_progress_do_not_use_up_the_retries(
        tmp_path: Path, artifact_server: ArtifactServer) -> None:
    # A link that drops every 1.5 MiB: three drops, with one retry allowed in a row.
    url, data = published(artifact_server, 5 << 20)
    name = f"*{Path(FILE).name}"
    artifact_server.faults.inject(name, Fault("drop", times=-1, after=3 << 19))
    settings = NetworkSettings(retries=1, backoff_initial=0.01)
    with make_client(settings) as client:
        Downloader(client, settings, NullReporter()).fetch(Download(url, tmp_path / "f", "f"))
    assert (tmp_path / "f").read_bytes() == data
    assert len(artifact_server.faults.requests(name)) == 4


def test_starting_over_again_and_again_is_no_progress(
        tmp_path: Path, artifact_server: ArtifactServer) -> None:
    # The server ignores Range and cuts every answer at 2 MiB: each attempt starts over
    # and gets the same 2 MiB, so the retries run out instead of going on for ever.
    url, _ = published(artifact_server, 5 << 20)
    name = f"*{Path(FILE).name}"
    artifact_server.faults.inject(name, Fault("ignore_range", times=-1, after=2 << 20))
    settings = NetworkSettings(retries=3, backoff_initial=0.01)
    with make_client(settings) as client, pytest.raises(NetworkError, match="gave up after 3"):
        Downloader(client, settings, NullReporter()).fetch(Download(url, tmp_path / "f", "f"))
    assert len(artifact_server.faults.requests(name)) == 4
