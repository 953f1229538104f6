"""What each answer must say of a transfer: a resumed range starts where the .part ends
and stays inside the file, announced sizes fit what is expected and the limit, and the
validator a resume sends is a strong ETag (else Last-Modified)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from airgap.errors import ServerResponseError
from airgap.net.download import Download
from airgap.net.transfer import Transfer, check_headers, check_resume
from airgap.trust.digests import Hasher


def resumed_at(offset: int, tmp_path: Path, size: int | None = 1000,
               max_size: int = 1 << 20) -> Transfer:
    item = Download("https://artifacts.example/f", tmp_path / "f", "f", size=size,
                    max_size=max_size)
    hasher = Hasher(sha256=False)
    hasher.update(b"x" * offset)
    return Transfer(item, hasher)


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers={k.replace("_", "-"): v for k, v in headers.items()})


def test_a_resumed_range_must_start_where_the_part_ends_and_fit_the_file(
        tmp_path: Path) -> None:
    transfer = resumed_at(400, tmp_path)
    check_resume(answer(206, content_range="bytes 400-999/1000"), transfer)
    assert (transfer.total, transfer.range_end) == (1000, 1000)
    for wrong, said in [("bytes 0-999/1000", "resumed at the wrong place"),
                        ("bytes 400-1000/1000", "past the end"),
                        ("bytes 400-1999/2000", "1000 are expected"),
                        ("", "resumed at the wrong place")]:
        with pytest.raises(ServerResponseError, match=said):
            check_resume(answer(206, content_range=wrong), resumed_at(400, tmp_path))
    with pytest.raises(ServerResponseError, match="more than the 1500 allowed"):
        check_resume(answer(206, content_range="bytes 400-1999/2000"),
                     resumed_at(400, tmp_path, size=None, max_size=1500))


def test_announced_lengths_fit_and_the_validator_is_a_strong_tag(tmp_path: Path) -> None:
    transfer = resumed_at(0, tmp_path)
    check_headers(answer(200, content_length="1000", etag='W/"weak"',
                         last_modified="Tue, 01 Dec 2026 00:00:00 GMT"), transfer)
    assert transfer.validator == "Tue, 01 Dec 2026 00:00:00 GMT"  # never a weak tag
    strong = resumed_at(0, tmp_path)
    check_headers(answer(200, content_length="1000", etag='"abc"'), strong)
    assert strong.validator == '"abc"'
    with pytest.raises(ServerResponseError, match="announces 1200 bytes, but 1000"):
        check_headers(answer(200, content_length="1200"), resumed_at(0, tmp_path))
    with pytest.raises(ServerResponseError, match="announces 900 bytes, but 1000"):
        check_headers(answer(200, content_length="900"), resumed_at(0, tmp_path))
    check_headers(answer(206, content_length="500"), resumed_at(400, tmp_path))  # short ok
    with pytest.raises(ServerResponseError):
        check_headers(answer(200, content_type="text/html", content_length="1000"),
                      resumed_at(0, tmp_path))
