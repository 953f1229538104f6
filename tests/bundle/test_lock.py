"""The bundle lock: a fetch holds it; ``verify``, ``load`` and ``split`` read it and never
wait on what is not a plain file there."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from airgap.bundle.layout import LOCK
from tests.conftest import start_airgap


@pytest.fixture
def fifo_locked(golden_bundle: Path, tmp_path: Path) -> Path:
    """A copy of the golden bundle whose ``.airgap.lock`` is a FIFO nobody writes to."""
    copy = tmp_path / "bundle"
    shutil.copytree(golden_bundle, copy)
    os.mkfifo(copy / LOCK)
    return copy


@pytest.mark.parametrize("command", ["verify", "load", "split", "fetch"])
def test_a_fifo_as_the_lock_is_refused_at_once_not_waited_on(
        command: str, fifo_locked: Path, tmp_path: Path, signer_public_key: Path) -> None:
    args = {
        "verify": ["verify", str(fifo_locked)],
        "load": ["load", str(fifo_locked), "--trust-signer", str(signer_public_key),
                 "--artifacts", str(tmp_path / "served")],
        "split": ["split", str(fifo_locked), "-o", str(tmp_path / "parts"), "--size", "1MB"],
        "fetch": ["fetch", str(tmp_path / "none.yaml"), "-o", str(fifo_locked)],
    }[command]
    if command == "fetch":
        # sources nobody answers on: the lock is refused before anything is asked
        (tmp_path / "none.yaml").write_text(
            "apiVersion: airgap/v1\nkind: Bundle\nstack: {version: 9.0.0}\nsources:\n"
            + "".join(f"  {s}: http://127.0.0.1:9/\n" for s in ("registry", "artifacts", "epr")))
    process = start_airgap(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL)
    try:
        _out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"airgap {command} waited on the FIFO")
    assert process.returncode == 3, err
    assert f"{fifo_locked / LOCK}: not a regular file" in err
    assert "Traceback" not in err
    assert not (tmp_path / "served").exists() and not (tmp_path / "parts").exists()
    assert (fifo_locked / LOCK).is_fifo()  # left as found: the user decides
