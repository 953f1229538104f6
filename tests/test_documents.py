"""Bounded JSON: deep or large documents are refused with a message, never a traceback."""

from __future__ import annotations

import pytest

from airgap.documents import DocumentError, nesting, parse_json


def test_a_document_within_its_bounds_parses() -> None:
    assert parse_json(b'{"a": [1, {"b": null}]}', max_size=100) == {"a": [1, {"b": None}]}
    assert nesting({"a": [1, {"b": None}]}) == 3
    assert nesting(5) == 0


@pytest.mark.parametrize("depth", [65, 900, 100_000])
def test_nesting_past_the_limit_is_refused(depth: int) -> None:
    with pytest.raises(DocumentError, match="nested deeper than the 64 levels"):
        parse_json(b"[" * depth + b"]" * depth, max_size=1 << 20)


def test_size_and_syntax() -> None:
    with pytest.raises(DocumentError, match="larger than the 10 bytes"):
        parse_json(b"[" + b"1," * 10 + b"1]", max_size=10)
    with pytest.raises(DocumentError, match="not valid JSON"):
        parse_json(b"<html>", max_size=100)
    with pytest.raises(DocumentError, match="not valid JSON"):
        parse_json(b"\xff\xfe\x00garbage", max_size=100)
