"""Sizes as people write them, for split's --size, --max-file and --block."""

from __future__ import annotations

import click
import pytest

from airgap.cli.options import parse_size


@pytest.mark.parametrize(("text", "size"), [
    ("4GiB", 4 << 30), ("4GiB-1", (4 << 30) - 1), ("4.7GB", 4_700_000_000),
    ("700MB", 700_000_000), ("25GB", 25_000_000_000), ("512KiB", 512 << 10),
    ("2048", 2048), ("4 kb", 4000), ("1.5MiB", 3 << 19), ("0.1GB", 100_000_000),
])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["4XB", "GB", "-1", "1B-1", "4,7GB", ""])
def test_what_is_not_a_size(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_size(text)
