"""Where load and export-image write is checked before the bundle is verified: a folder
that cannot be created or written, an image or platform the bundle does not hold, or a
tar with nowhere to go is a usage error (exit 2) in seconds, and no file is hashed."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_programs, require_root
from tests.terminal import at_terminal, in_pipe

URLS = ["--registry-url", "https://epr.corp.example:8443", "--artifacts-url",
        "https://files.corp.example/downloads"]


@pytest.fixture(scope="module")
def slow_bundle(golden_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle that fails verification (exit 3): a file SHA512SUMS does not list, of
    4 GiB of holes, slow to hash should a verification read it. A check that comes
    first answers exit 2 before it, and no "hashing" line is seen."""
    bundle = tmp_path_factory.mktemp("slow") / "bundle"
    shutil.copytree(golden_bundle, bundle)
    with (bundle / "downloads" / "big.tar.gz").open("wb") as big:
        big.truncate(4 << 30)
    return bundle


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only file system (root may write anywhere else)."""
    require_programs("mount", "umount")
    require_root("a read-only mount")
    folder = tmp_path / "ro"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                   check=True)
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def refused(bundle: Path, *args: str) -> str:
    """Run airgap into a pipe; it must refuse with exit 2, in seconds, before hashing."""
    started = time.monotonic()
    result = in_pipe(args[0], str(bundle), *args[1:])
    assert result.returncode == 2, result.stdout + result.stderr
    assert time.monotonic() - started < 15
    assert "hashing" not in result.stderr and "failed verification" not in result.stderr, \
        result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_an_artifacts_or_config_folder_that_cannot_be_made_is_refused_first(
        slow_bundle: Path, tmp_path: Path, read_only: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way\n")
    err = refused(slow_bundle, "load", "--artifacts", str(blocker / "served"))
    assert f"--artifacts {blocker / 'served'} cannot be created: {blocker} is a file, " \
           "not a folder" in err
    err = refused(slow_bundle, "load", "--artifacts", str(blocker))
    assert f"'--artifacts': Directory '{blocker}' is a file" in err  # click's own check
    err = refused(slow_bundle, "load", "--artifacts", str(read_only / "served"))
    assert f"--artifacts {read_only / 'served'} cannot be created in {read_only}: it is on " \
           "a read-only file system" in err
    err = refused(slow_bundle, "load", "--config", str(blocker / "cfg"), *URLS)
    assert f"--config {blocker / 'cfg'} cannot be created: {blocker} is a file" in err
    err = refused(slow_bundle, "load", "--config", str(read_only), *URLS)
    assert f"--config {read_only} cannot be written: it is on a read-only file system" in err
    assert list(read_only.iterdir()) == []


def test_export_image_refuses_what_it_cannot_write_before_verifying(
        slow_bundle: Path, tmp_path: Path, read_only: Path) -> None:
    written = tmp_path / "registry.tar"
    err = refused(slow_bundle, "export-image", "--platform", "linux/s390x", "-o", str(written))
    assert "has no linux/s390x platform; it has linux/amd64, linux/arm64" in err
    err = refused(slow_bundle, "export-image", "--image", "no-such-image", "-o", str(written))
    assert "--image 'no-such-image': the bundle has no image by that name" in err
    assert not written.exists()
    tar = tmp_path / "out" / "registry.tar"
    err = refused(slow_bundle, "export-image", "-o", str(tar))
    assert f"-o {tar}: its folder {tar.parent} does not exist" in err
    assert f"mkdir -p {tar.parent}" in err
    err = refused(slow_bundle, "export-image", "-o", str(tmp_path))
    assert "is a directory" in err
    err = refused(slow_bundle, "export-image", "-o", str(read_only / "registry.tar"))
    assert f"cannot be written in {read_only}: it is on a read-only file system" in err
    assert not tar.parent.exists()


def test_at_a_terminal_the_refusals_come_before_the_verification(
        slow_bundle: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way\n")
    for args, message in (
            (["load", str(slow_bundle), "--artifacts", str(blocker / "served")],
             f"{blocker} is a file, not a folder"),
            (["export-image", str(slow_bundle), "--platform", "linux/s390x", "-o",
              str(tmp_path / "registry.tar")], "has no linux/s390x platform")):
        started = time.monotonic()
        seen = at_terminal(*args)
        seen.assert_no_traceback()
        assert seen.code == 2, seen.text
        assert time.monotonic() - started < 15
        assert message in seen.text, seen.text
        assert "hashing" not in seen.drawn, seen.drawn
