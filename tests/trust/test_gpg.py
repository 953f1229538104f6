"""GnuPG in an isolated home: the pinned Elastic key, trusted keys only, clear refusals."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from airgap import elastic
from airgap.errors import SignatureError, ToolMissingError, UsageError
from airgap.trust.gpg import (
    OLD_STYLE_AGE,
    Verifier,
    _MessageFeed,
    _send,
    elastic_key_text,
    gpg_binary,
)
from tests.conftest import start_airgap
from tests.peers.gpgkeys import SigningKey


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "elastic-agent-9.0.0-linux-x86_64.tar.gz"
    path.write_bytes(os.urandom(50_000))
    return path


def test_bundled_elastic_key_is_pinned_by_fingerprint() -> None:
    with Verifier() as verifier:
        (key,) = verifier.keys.values()
    assert key.fingerprint == "46095ACC8548582C1A2699A9D27D666CD88E42B4"
    assert key.fingerprint == elastic.ELASTIC_KEY_FINGERPRINT
    assert key.is_elastic and key.key_id == "D27D666CD88E42B4"
    assert key.uids == ("Elasticsearch (Elasticsearch Signing Key) <dev_ops@elasticsearch.org>",)
    assert "BEGIN PGP PUBLIC KEY BLOCK" in key.armored
    assert "BEGIN PGP PUBLIC KEY BLOCK" in elastic_key_text()


def test_signature_by_a_trusted_key_is_accepted(data: Path, signer: SigningKey,
                                                signer_public_key: Path) -> None:
    signature = signer.sign(data)
    with Verifier([signer_public_key]) as verifier:
        assert verifier.verify(data, signature).fingerprint == signer.fingerprint


def test_signature_by_an_unknown_key_is_refused(data: Path, attacker: SigningKey,
                                                signer_public_key: Path) -> None:
    signature = attacker.sign(data)
    with Verifier([signer_public_key]) as verifier, \
            pytest.raises(SignatureError, match="signed by key ID .* which is not a trusted key"):
        verifier.verify(data, signature)


def test_altered_file_missing_and_corrupt_signatures_are_refused(
        data: Path, signer: SigningKey, signer_public_key: Path, tmp_path: Path) -> None:
    signature = signer.sign(data)
    with Verifier([signer_public_key]) as verifier:
        altered = tmp_path / "altered"
        content = data.read_bytes()
        altered.write_bytes(content[:-1] + bytes([content[-1] ^ 0xFF]))
        with pytest.raises(SignatureError, match="does not match its signature"):
            verifier.verify(altered, signature, name=data.name)
        with pytest.raises(SignatureError, match="the signature nothing.asc is missing"):
            verifier.verify(data, tmp_path / "nothing.asc")
        garbage = tmp_path / "garbage.asc"
        lines = signature.read_text().splitlines()
        garbage.write_text("\n".join([*lines[:2], "AAAA" + lines[2][4:], *lines[3:]]) + "\n")
        with pytest.raises(SignatureError,
                           match=f"{data.name}: garbage.asc is not a valid OpenPGP signature"):
            verifier.verify(data, garbage)


def test_a_key_file_without_a_key_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.asc"
    empty.write_text("not a key\n")
    with pytest.raises(UsageError, match="no OpenPGP public key found"):
        Verifier([empty])


def test_users_own_gnupg_home_is_never_used(data: Path, attacker: SigningKey, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # A user keyring that trusts the attacker, as HOME and as GNUPGHOME.
    home = tmp_path / "home"
    gnupg = home / ".gnupg"
    gnupg.mkdir(parents=True, mode=0o700)
    public = attacker.export_public(tmp_path / "attacker.asc")
    subprocess.run(["gpg", "--homedir", str(gnupg), "--batch", "--import", str(public)],
                   check=True, capture_output=True)
    # That import started an agent in the user's home: stop it, then see none come back.
    subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "gpg-agent"],
                   check=True, capture_output=True)
    before = {p: p.read_bytes() for p in gnupg.rglob("*") if p.is_file()}
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GNUPGHOME", str(gnupg))
    signature = attacker.sign(data)
    with Verifier() as verifier, pytest.raises(SignatureError, match="not a trusted key"):
        verifier.verify(data, signature)
    after = {p: p.read_bytes() for p in gnupg.rglob("*") if p.is_file()}
    assert after == before
    agents = subprocess.run(["pgrep", "-f", f"gpg-agent --homedir {gnupg}"],
                            capture_output=True, text=True).stdout
    assert agents == "", "an agent was started in the user's GnuPG home"


def test_missing_gpg_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissingError, match="gpg \\(GnuPG\\) is not installed") as caught:
        gpg_binary()
    assert "apt-get install gnupg" in str(caught.value)


# The FIFO through which gpg reads a signed message (see Verifier._check_as_message).

def _open_source(tmp_path: Path, content: bytes) -> int:
    source = tmp_path / "artifact.bin"
    source.write_bytes(content)
    return os.open(source, os.O_RDONLY)


def _feed(tmp_path: Path, content: bytes, length: int) -> tuple[_MessageFeed, int]:
    handle = _open_source(tmp_path, content)
    return _MessageFeed(tmp_path / "message", b"PREFIX", handle, length), handle


def _read_all(path: Path) -> bytes:
    with path.open("rb") as fifo:
        return fifo.read()


def test_the_feed_sends_the_prefix_then_exactly_the_file(tmp_path: Path) -> None:
    content = os.urandom(3 * (1 << 20) + 999)  # many pipe-fulls, and a short last one
    feed, handle = _feed(tmp_path, content, len(content))
    try:
        assert _read_all(feed.path) == b"PREFIX" + content
        assert feed.finish()
        assert not feed.path.exists()
    finally:
        os.close(handle)


@pytest.mark.parametrize("splice", [True, False], ids=["splice", "copy"])
def test_both_ways_of_sending_move_the_bytes_asked_for(tmp_path: Path, splice: bool) -> None:
    # The copy is what runs where splice(2) is missing or the file system refuses it.
    content = os.urandom(50_000)
    handle = _open_source(tmp_path, content)
    read_end, write_end = os.pipe()
    try:
        moved = _send(handle, write_end, 1000, 30_000, splice=splice)
        assert 0 < moved <= 30_000
        assert os.read(read_end, 65536) == content[1000:1000 + moved]
        assert _send(handle, write_end, len(content), 10, splice=splice) == 0
    finally:
        for fd in (handle, read_end, write_end):
            os.close(fd)


@pytest.mark.parametrize("length", [1000, 3000])
def test_a_file_not_of_the_announced_length_is_not_complete(tmp_path: Path,
                                                            length: int) -> None:
    feed, handle = _feed(tmp_path, os.urandom(2000), length)
    try:
        sent = _read_all(feed.path)
        assert len(sent) == len(b"PREFIX") + min(length, 2000)
        assert not feed.finish()
    finally:
        os.close(handle)


def test_a_reader_that_stops_early_ends_the_feed(tmp_path: Path) -> None:
    feed, handle = _feed(tmp_path, os.urandom(4 << 20), 4 << 20)
    try:
        with feed.path.open("rb") as fifo:
            assert fifo.read(100)[:6] == b"PREFIX"
        assert not feed.finish()  # a broken pipe, not a hang
    finally:
        os.close(handle)


def test_a_feed_nobody_opens_ends_and_leaves_no_fifo(tmp_path: Path) -> None:
    # As when gpg fails before it opens its input: the writer must not wait forever.
    feed, handle = _feed(tmp_path, os.urandom(1 << 20), 1 << 20)
    try:
        started = time.monotonic()
        assert not feed.finish()
        assert time.monotonic() - started < 5
        assert not feed.path.exists()
    finally:
        os.close(handle)


def test_checks_leave_nothing_in_the_home(data: Path, signer: SigningKey,
                                          signer_public_key: Path) -> None:
    with Verifier([signer_public_key]) as verifier:
        home = verifier._home
        before = set(home.iterdir())
        for _ in range(3):
            verifier.verify(data, signer.sign(data))
        assert set(home.iterdir()) == before


def spy_gpg(folder: Path, seen: Path) -> dict[str, str]:
    """A ``gpg`` first on PATH that writes its environment to ``seen``, then runs gpg."""
    folder.mkdir()
    real = gpg_binary()
    (folder / "gpg").write_text(f"#!/bin/sh\n/usr/bin/env >> {seen}\nexec {real} \"$@\"\n")
    (folder / "gpg").chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}


def test_gpg_gets_no_secret_of_airgap_s(data: Path, signer: SigningKey,
                                       signer_public_key: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    signer.sign(data)
    seen = tmp_path / "environment"
    for name, value in spy_gpg(tmp_path / "bin", seen).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRGAP_REGISTRY_PASSWORD", "hunter2")
    monkeypatch.setenv("AIRGAP_REGISTRY_USERNAME", "operator")
    monkeypatch.setenv("AIRGAP_SIGN_PASSPHRASE", "sesame")
    with Verifier([signer_public_key]) as verifier:
        verifier.verify(data, data.with_name(data.name + ".asc"))
    child = seen.read_text()
    assert "PATH=" in child
    assert "hunter2" not in child and "sesame" not in child and "AIRGAP_REGISTRY" not in child


def test_the_homes_of_dead_processes_are_removed_by_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = tmp_path / f"airgap-gnupg-{gone.pid}-abcd1234"
    (dead / "private-keys-v1.d").mkdir(parents=True)
    alive = tmp_path / f"airgap-gnupg-{os.getppid()}-abcd1234"
    alive.mkdir()
    other = tmp_path / "airgap-gnupg-notapid"
    other.mkdir()
    # An earlier airgap named them airgap-gnupg-<random>: no process to ask, so one
    # is removed once untouched for a day, and a fresh one (perhaps in use) is kept.
    stale, fresh = tmp_path / "airgap-gnupg-k3x_9qa0", tmp_path / "airgap-gnupg-zz81m2rt"
    (stale / "private-keys-v1.d").mkdir(parents=True)
    fresh.mkdir()
    day_ago = time.time() - OLD_STYLE_AGE - 60
    os.utime(stale, (day_ago, day_ago))
    with Verifier() as verifier:
        home = verifier._home
        assert home.name.startswith(f"airgap-gnupg-{os.getpid()}-")
        assert not dead.exists() and not stale.exists()
        assert alive.exists() and other.exists() and fresh.exists()
    assert not home.exists()


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("during", ["gpg starting", "a key's import", "gpg-agent stopping"])
def test_an_interruption_anywhere_removes_the_gnupg_home(
        during: str, signal_name: str, golden_bundle: Path, tmp_path: Path) -> None:
    # A gpg (or gpgconf) that hangs at one step: the signal comes while airgap waits on it.
    tools = tmp_path / "bin"
    tools.mkdir()
    marker, pid = tmp_path / "waiting", tmp_path / "pid"
    program, step = {"gpg starting": ("gpg", "--list-config"),
                     "a key's import": ("gpg", "--import"),
                     "gpg-agent stopping": ("gpgconf", "--kill")}[during]
    real = shutil.which(program)
    (tools / program).write_text(f"""#!/bin/sh
for arg in "$@"; do
  if [ "$arg" = {step} ]; then echo $$ > {pid}; touch {marker}; exec sleep 60; fi
done
exec {real} "$@"
""")
    (tools / program).chmod(0o755)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {"PATH": f"{tools}:{os.environ['PATH']}", "TMPDIR": str(temporary)}
    process = start_airgap("verify", str(golden_bundle), "--quiet", env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None and not marker.exists():
            time.sleep(0.02)
        assert marker.exists(), f"{program} {step} never ran"
        assert list(temporary.glob("airgap-gnupg-*")), "no GnuPG home while gpg runs"
        process.send_signal(getattr(signal, signal_name))
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(pid.read_text()), signal.SIGKILL)  # the hanging stand-in
    assert process.returncode == (130 if signal_name == "SIGINT" else 143), stderr
    assert "Traceback" not in stderr
    assert list(temporary.glob("airgap-gnupg-*")) == [], "the GnuPG home was left behind"


def test_a_key_file_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "key.asc"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(UsageError, match="not a regular file"), Verifier([fifo]):
        pass
    assert time.monotonic() - started < 10


def test_a_gpg_left_waiting_on_a_dead_process_s_feed_is_released(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # kill -9 during a signature check leaves gpg opening the message FIFO, for ever.
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()
    home = tmp_path / f"airgap-gnupg-{gone.pid}-abcd1234"
    home.mkdir(mode=0o700)
    os.mkfifo(home / "message-3")
    waiting = subprocess.Popen([gpg_binary(), "--homedir", str(home), "--batch",
                                "--no-autostart", "--verify", "--", str(home / "message-3")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        assert waiting.poll() is None, "gpg should be waiting for a writer"
        with Verifier():
            pass
        assert waiting.wait(timeout=10) != 0  # it got an end of file and gave up
        assert not home.exists()
    finally:
        waiting.kill()
        waiting.wait()
