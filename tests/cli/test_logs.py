"""Not a terminal: a log. Plain lines, never wrapped, one event each with its UTC time;
``--json`` as one document; an interruption as one line; never a traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from airgap.manifest import load_manifest, make_plan
from tests.conftest import REPO, ManifestMaker, site_manifest
from tests.peers.artifacts import ArtifactServer
from tests.peers.defend import DefendServer
from tests.peers.epr import EprServer
from tests.peers.files import Fault
from tests.peers.gpgkeys import SigningKey
from tests.peers.registry_front import RegistryFront
from tests.terminal import at_terminal, in_pipe, signal_when

AGENT = "downloads/beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "


def test_a_piped_fetch_logs_one_line_per_event(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    bundle = tmp_path / "bundle"
    result = in_pipe("fetch", str(manifest), "-o", str(bundle))
    assert result.returncode == 0, result.stderr
    log = result.stderr.splitlines()
    assert all(re.match(STAMP, line) for line in log), log
    assert f"fetch {manifest} into {bundle}: " in log[0]  # what will be done, first
    assert any(re.search(rf"fetched {re.escape(AGENT)} [\d.]+ KiB sha512 ok, signature ok", line)
               for line in log), log
    assert any(re.search(r"image: done", line) for line in log)
    assert result.stdout.splitlines()[-1].startswith("done: ")  # and the result, last


def test_a_piped_verify_keeps_whole_paths_on_one_line(golden_bundle: Path,
                                                      tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    (bundle / AGENT).write_bytes(b"x")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    # airgap verify B 2>&1 | grep -F <the file's name>
    verify = subprocess.Popen([sys.executable, "-m", "airgap", "verify", str(bundle)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    pipeline = subprocess.run(["grep", "-F", AGENT.rsplit("/", 1)[1]], stdin=verify.stdout,
                              capture_output=True, text=True, check=False)
    assert verify.stdout is not None
    verify.stdout.close()
    assert verify.wait(timeout=60) == 3
    found = pipeline.stdout.splitlines()
    assert any(line.startswith(f"problem {AGENT} modified") for line in found), found


def test_every_line_a_piped_command_writes_on_stderr_has_its_time_and_first_the_plan(
        golden_bundle: Path, operator_key: Path, tmp_path: Path) -> None:
    trust = ("--trust-key", str(operator_key))
    served, tar = tmp_path / "served", tmp_path / "image.tar"
    runs = {"verify": in_pipe("verify", str(golden_bundle), *trust),
            "load": in_pipe("load", str(golden_bundle), "--artifacts", str(served), *trust),
            "export-image": in_pipe("export-image", str(golden_bundle), "--platform", "arm64",
                                    "-o", str(tar), *trust)}
    first = {}
    for command, result in runs.items():
        assert result.returncode == 0, result.stderr
        log = result.stderr.splitlines()
        assert log and all(re.match(STAMP, line) for line in log), log
        first[command] = re.sub(STAMP, "", log[0])
        assert first[command].startswith(f"{command} {golden_bundle}"), log
    assert first["verify"].endswith("offline")
    assert first["load"] == f"load {golden_bundle}: verify it, then lay out the binaries in " \
        f"{served}"
    assert first["export-image"] == f"export-image {golden_bundle} to {tar}: verify it, then " \
        "write the package registry for arm64"
    # What ends a run badly has its time too: an error with its details, a usage error.
    damaged = tmp_path / "damaged"
    shutil.copytree(golden_bundle, damaged)
    (damaged / AGENT).write_bytes(b"x")
    ended = {"failed": (in_pipe("verify", str(damaged), *trust), 3),
             "usage": (in_pipe("verify"), 2),
             "no bundle": (in_pipe("inspect", str(tmp_path / "none")), 2)}
    for result, code in ended.values():
        log = result.stderr.splitlines()
        assert result.returncode == code and log, result.stderr
        assert all(re.match(STAMP, line) for line in log), log
        assert "Traceback" not in result.stderr
    failed = ended["failed"][0].stderr.splitlines()
    assert re.match(STAMP + "error: .* failed verification", failed[-1]), failed
    assert re.match(STAMP + "Error: Missing argument 'BUNDLE'",
                    ended["usage"][0].stderr.splitlines()[-1])


def test_a_piped_inspect_and_plan_are_lines(golden_bundle: Path) -> None:
    contents = in_pipe("inspect", str(golden_bundle))
    assert contents.returncode == 0
    assert "artifact elastic-agent linux/x86_64 archive" in contents.stdout
    assert AGENT in contents.stdout
    plan = in_pipe("plan", "manifests/lite-x86_64.yaml")
    assert plan.returncode == 0
    assert "artifact fleet-server downloads/fleet-server/fleet-server-9.0.0-linux-x86_64.tar.gz" \
        " ← integration fleet_server" in plan.stdout


def _slow_site(make_manifest: ManifestMaker, registry_front: RegistryFront,
               artifact_server: ArtifactServer, epr_server: EprServer) -> Path:
    """A site whose binaries (8 MiB each) download slowly, seconds each."""
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             size=8 << 20)
    artifact_server.faults.inject("*.tar.gz", Fault("slow", times=-1, delay=0.05))
    return manifest


def _signalled_piped_fetch(make_manifest: ManifestMaker, registry_front: RegistryFront,
                           artifact_server: ArtifactServer, epr_server: EprServer,
                           tmp_path: Path, signum: int) -> tuple[int, str]:
    """A fetch into a pipe, sent ``signum`` while it downloads; its exit code and log."""
    manifest = _slow_site(make_manifest, registry_front, artifact_server, epr_server)
    bundle = tmp_path / "bundle"
    process = subprocess.Popen([sys.executable, "-m", "airgap", "fetch", str(manifest), "-o",
                                str(bundle)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    signal_when(process, lambda: any((bundle / ".airgap-next").rglob("*.tar.gz.part"))
                if (bundle / ".airgap-next").is_dir() else False, signum)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


def test_sigterm_on_a_piped_fetch_logs_what_was_kept(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    code, stderr = _signalled_piped_fetch(make_manifest, registry_front, artifact_server,
                                          epr_server, tmp_path, signal.SIGTERM)
    assert code == 143, stderr
    assert all(re.match(STAMP, line) for line in stderr.splitlines()), stderr
    last = re.sub(STAMP, "", stderr.splitlines()[-1])
    assert last.startswith("terminated: ") and "run the same command again" in last
    assert "Traceback" not in stderr


def test_output_nobody_reads_ends_with_141_quietly(golden_bundle: Path) -> None:
    reading, writing = os.pipe()
    os.close(reading)  # the reader is gone before the first line: | head -0
    try:
        closed = subprocess.run([sys.executable, "-m", "airgap", "inspect", str(golden_bundle)],
                                cwd=REPO, stdout=writing, stderr=subprocess.PIPE, text=True,
                                env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
                                timeout=60, check=False)
    finally:
        os.close(writing)
    assert closed.returncode == 141 and closed.stderr == ""
    # As a person types it: head reads one line and leaves; airgap ends as quietly,
    # with 0 when it had written everything before head left.
    piped = subprocess.run(["bash", "-c", '"$1" -m airgap inspect "$2" | head -1; '
                            'echo "status ${PIPESTATUS[0]}"', "bash", sys.executable,
                            str(golden_bundle)], cwd=REPO, capture_output=True, text=True,
                           env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60,
                           check=False)
    lines = piped.stdout.splitlines()
    assert len(lines) == 2 and lines[1] in ("status 0", "status 141"), piped
    assert piped.stderr == ""


# What a reader that leaves mid-download waits for,: a binary's .part (the downloads of
# the test's binaries are slow, seconds each).
def _until_downloading(bundle: Path) -> str:
    return f'until find "{bundle}" -name "*.tar.gz.part" 2>/dev/null | grep -q .; ' \
        'do sleep 0.05; done'


def test_a_log_reader_that_leaves_mid_download_stops_the_fetch_quietly_with_141(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = _slow_site(make_manifest, registry_front, artifact_server, epr_server)
    bundle, result = tmp_path / "bundle", tmp_path / "result"
    # airgap fetch M -o B 2>&1 >result | head -7, with a head that leaves only once a
    # binary downloads (slowly): the next line comes from a download thread, and finds
    # nobody reading. The first six lines are the plan's, the seventh a file fetched.
    piped = subprocess.run(["bash", "-c", '"$1" -m airgap fetch "$2" -o "$3" 2>&1 >"$4" '
                            f'| {{ head -7; {_until_downloading(bundle)}; }}; '
                            'echo "status ${PIPESTATUS[0]}"', "bash",
                            sys.executable, str(manifest), str(bundle), str(result)],
                           cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
                           env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    lines = piped.stdout.splitlines()
    assert len(lines) == 8 and lines[-1] == "status 141", piped
    assert all(re.match(STAMP, line) for line in lines[:7]) and " fetched " in lines[6], lines
    assert piped.stderr == "" and result.read_text() == ""  # no result: it stopped
    staged = bundle / ".airgap-next"
    assert any(staged.rglob("*.tar.gz.part")), "no download was under way"
    assert not (bundle / "bundle.json").exists()
    # The lock is free and the bundle resumable: the same command completes it.
    artifact_server.faults.clear()
    again = in_pipe("fetch", str(manifest), "-o", str(bundle), timeout=120)
    assert again.returncode == 0, again.stderr
    assert "resumed" in again.stderr and again.stdout.splitlines()[-1].startswith("done: ")


def test_at_a_terminal_a_log_of_stderr_that_leaves_mid_download_ends_it_with_141(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = _slow_site(make_manifest, registry_front, artifact_server, epr_server)
    bundle, log = tmp_path / "bundle", tmp_path / "log"
    # airgap fetch M -o B 2> >(head -7 >log): the result for the terminal, the log for a
    # reader that leaves while the download threads write.
    started = time.monotonic()
    seen = at_terminal("fetch", str(manifest), "-o", str(bundle), timeout=120, prefix=(
        "bash", "-c", f'exec "$@" 2> >(head -7 >"{log}"; {_until_downloading(bundle)})', "bash"))
    seen.assert_no_traceback()
    assert seen.code == 141, seen.raw
    assert seen.text == "", seen.text  # neither the result nor an error: it stopped
    assert time.monotonic() - started < 60
    assert len(log.read_text().splitlines()) == 7
    assert any((bundle / ".airgap-next").rglob("*.tar.gz.part")), "no download was under way"
    artifact_server.faults.clear()
    again = in_pipe("fetch", str(manifest), "-o", str(bundle))
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert "resumed" in again.stderr


def test_sighup_on_a_piped_fetch_logs_one_line_and_exits_129(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    code, stderr = _signalled_piped_fetch(make_manifest, registry_front, artifact_server,
                                          epr_server, tmp_path, signal.SIGHUP)
    assert code == 129, stderr
    log = stderr.splitlines()
    assert all(re.match(STAMP, line) for line in log), log
    assert re.match(STAMP + "hung up: .*run the same command again", log[-1]), log
    assert sum("hung up" in line for line in log) == 1 and "Traceback" not in stderr


def envelope(text: str) -> dict[str, object]:
    document = json.loads(text)  # the whole of stdout is one document
    assert isinstance(document, dict)
    assert set(document) == {"format", "command", "status", "exit_code", "result",
                             "problems", "warnings", "error"}
    assert document["format"] == 1
    return document


def test_json_is_one_envelope_for_every_command(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, golden_bundle: Path,
        operator: SigningKey, operator_key: Path, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    bundle = tmp_path / "bundle"
    signing = ("--sign-with", operator.fingerprint, "--gnupg-home", str(operator.home))
    fetched = envelope(in_pipe("fetch", str(manifest), "-o", str(bundle), *signing,
                               "--json").stdout)
    assert fetched["command"] == "fetch" and fetched["status"] == "ok"
    assert fetched["result"]["fetched_bytes"] > 0  # type: ignore[index]
    again = envelope(in_pipe("fetch", str(manifest), "-o", str(bundle), *signing,
                             "--json").stdout)
    assert again["result"]["unchanged"] and again["result"]["fetched_bytes"] == 0  # type: ignore[index]
    trust = ("--trust-key", str(operator_key))
    for command in (["plan", str(manifest)], ["verify", str(bundle), *trust],
                    ["inspect", str(bundle)],
                    ["load", str(bundle), "--artifacts", str(tmp_path / "served"), *trust]):
        result = in_pipe(*command, "--json")
        document = envelope(result.stdout)
        assert (document["command"], document["status"]) == (command[0], "ok"), result.stderr
    damaged = tmp_path / "damaged"
    shutil.copytree(golden_bundle, damaged)
    (damaged / AGENT).write_bytes(b"x")
    result = in_pipe("verify", str(damaged), "--json")
    document = envelope(result.stdout)
    assert result.returncode == 3 and document["status"] == "verification-failed"
    assert any((p["path"], p["kind"]) == (AGENT, "modified")  # type: ignore[index]
               for p in document["problems"])  # type: ignore[union-attr]
    refused = envelope(in_pipe("load", str(damaged), "--artifacts", str(tmp_path / "x"),
                               *trust, "--json").stdout)
    assert refused["status"] == "verification-failed" and refused["problems"]
    failed = in_pipe("fetch", "no-such.yaml", "-o", str(tmp_path / "b"), "--json")
    document = envelope(failed.stdout)
    assert failed.returncode == 2 and document["status"] == "failed"
    assert "no such manifest" in document["error"]["message"]  # type: ignore[index]


def test_a_usage_error_with_json_is_still_one_envelope(tmp_path: Path) -> None:
    for args, message in ((["verify", "--json"], "Missing argument 'BUNDLE'."),
                          (["plan", "manifests/lite-x86_64.yaml", "--jobs", "0", "--json"],
                           "Invalid value for '--jobs'"),
                          (["inspect", str(tmp_path / "none"), "--json"], "does not exist")):
        result = in_pipe(*args)
        document = envelope(result.stdout)
        assert result.returncode == 2 and document["exit_code"] == 2, result.stderr
        assert (document["command"], document["status"]) == (args[0], "failed")
        error = document["error"]
        assert isinstance(error, dict) and message in error["message"], error
        assert error["kind"] == "UsageError" and error["details"] == [
            f"see airgap {args[0]} --help"]
        assert "Usage: airgap" in result.stderr  # and the person reading the log sees it
    assert in_pipe("verify").stdout == ""  # no JSON unless asked


def test_an_unexpected_error_is_one_line_and_the_trace_only_when_asked(
        golden_bundle: Path, tmp_path: Path) -> None:
    # A fault in a library airgap relies on (not in airgap's own code): json.loads fails.
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import json\n"
        "def broken(*args, **kwargs):\n"
        "    raise ZeroDivisionError('injected')\n"
        "json.loads = broken\n")
    env = {"PYTHONPATH": f"{inject}:{REPO}"}
    result = in_pipe("inspect", str(golden_bundle), env=env)
    assert result.returncode == 1
    assert re.fullmatch(STAMP + "error: unexpected ZeroDivisionError: injected",
                        result.stderr.splitlines()[0]), result.stderr
    assert "AIRGAP_DEBUG=1" in result.stderr and "Traceback" not in result.stderr
    debug = in_pipe("inspect", str(golden_bundle), env={**env, "AIRGAP_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "error: unexpected ZeroDivisionError" in debug.stderr


_UNIT = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def _bytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * _UNIT[unit]


def test_a_piped_fetchs_totals_counts_and_final_numbers_add_up(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, defend_server: DefendServer,
        tmp_path: Path) -> None:
    manifest = make_manifest(artifacts_from=artifact_server, epr_from=epr_server,
                             platforms={"arch": ["x86_64", "arm64"]},
                             integrations=["system", "nginx", "endpoint"],
                             sources={"registry": registry_front.url,
                                      "security": defend_server.url})
    for item in make_plan(load_manifest(manifest)).artifacts:
        artifact_server.publish(item.path, 30_000)
    defend_server.publish("9.0.0", "1.0.3", {"production-rules-linux-v1": b"rule\n" * 3000,
                                             "diagnostic-configuration-v1": b"d\n" * 900})
    bundle = tmp_path / "bundle"
    result = in_pipe("fetch", str(manifest), "-o", str(bundle))
    assert result.returncode == 0, result.stderr
    log = [re.sub(STAMP, "", line, count=1) for line in result.stderr.splitlines()]
    size = r"(\d+(?:\.\d)? [KMG]?i?B)"
    announced: dict[str, tuple[str, int]] = {}
    ended: dict[str, tuple[int, int, str]] = {}
    for line in log:
        start = re.fullmatch(rf"(image|artifacts|packages|defend): (?:.*, )?{size} in (\d+) files",
                             line)
        if start:
            announced[start[1]] = (start[2], int(start[3]))
        end = re.fullmatch(rf"(image|artifacts|packages|defend): done, (\d+)/(\d+) files, "
                           rf"{size} \(.*\)", line)
        if end:
            ended[end[1]] = (int(end[2]), int(end[3]), end[4])
    phases = {"image", "artifacts", "packages", "defend"}
    assert set(announced) == phases and set(ended) == phases, log
    for phase in phases:  # what each phase announced is what it did
        total, files = announced[phase]
        assert ended[phase] == (files, files, total), (phase, log)
    [check] = [line for line in log if line.startswith("check: ") and " in " in line]
    found = re.match(rf"check: {size} in (\d+) files", check)
    assert found, check
    fetched = ("image", "artifacts", "packages", "defend")  # Defend's manifests are read
    assert int(found[2]) == sum(announced[p][1] for p in fetched), (check, announced)
    assert abs(_bytes(found[1]) - sum(_bytes(announced[p][0]) for p in fetched)) \
        <= 0.05 * _UNIT[found[1].split()[1]] * 3, (check, announced)
    # The table: one row per part, the files of each counted once, and with the files
    # the fetch wrote itself, they add up to the last line.
    out = result.stdout.splitlines()
    rows = [re.fullmatch(rf"part (.+?) (\d+) {size} .*", line) for line in out
            if line.startswith("part ")]
    assert all(rows), out
    counts = {row[1]: int(row[2]) for row in rows if row}
    done = re.fullmatch(rf"done: (\d+) files, {size}, listed in .*", out[-1])
    assert done, out
    assert sum(counts.values()) == int(done[1]), out
    on_disk = [p for p in bundle.rglob("*") if p.is_file() and p.name != ".airgap.lock"]
    assert len(on_disk) == int(done[1]), (sorted(map(str, on_disk)), out)
    assert abs(sum(p.stat().st_size for p in on_disk) - _bytes(done[2])) \
        <= 0.05 * _UNIT[done[2].split()[1]], out
    by_phase = {"artifacts": counts["artifacts"], "packages": counts["packages"],
                "image": next(n for name, n in counts.items() if name.startswith("image")),
                "defend": next(n for name, n in counts.items() if "Defend" in name)}
    assert by_phase == {p: announced[p][1] for p in phases}, (out, announced)


def test_debug_shows_the_whole_chain_of_causes_of_an_error(golden_bundle: Path,
                                                          tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    (bundle / "bundle.json").write_text('{"format": 1, ')
    plain = in_pipe("inspect", str(bundle))
    assert plain.returncode == 3 and "Traceback" not in plain.stderr
    assert "bundle.json is damaged: not valid JSON" in plain.stderr
    debug = in_pipe("--debug", "inspect", str(bundle))
    assert debug.returncode == 3
    # the message a person reads was raised "from None" over the causes: --debug keeps them
    order = [debug.stderr.find(name) for name in (
        "json.decoder.JSONDecodeError", "airgap.documents.DocumentError",
        "airgap.errors.DamagedBundleError")]
    assert -1 not in order and order == sorted(order), debug.stderr
    assert re.search(STAMP + "error: .*bundle.json is damaged", debug.stderr.splitlines()[-2])
