"""The command line: output, JSON, and exit codes, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airgap.cli import main
from tests.conftest import REPO


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m airgap`` in a fresh process, as an operator would."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "airgap", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60, env=env)


def test_plan_json_lists_every_artifact_with_checksum_and_signature() -> None:
    result = run("plan", "manifests/full-multiarch.yaml", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)["result"]
    assert data["image"]["reference"] == "docker.elastic.co/package-registry/distribution:9.0.0"
    urls = {a["url"] for a in data["artifacts"]}
    assert ("https://artifacts.elastic.co/downloads/beats/elastic-agent/"
            "elastic-agent-9.0.0-windows-x86_64.zip") in urls
    assert all(a["asc_url"] == a["url"] + ".asc" for a in data["artifacts"])
    assert [p["name"] for p in data["packages"]][:2] == ["system", "nginx"]


def test_plan_table_shows_reasons() -> None:
    result = run("plan", "manifests/lite-x86_64.yaml")
    assert result.returncode == 0, result.stderr
    assert "lite-9.0.0" in result.stdout
    assert "← integration fleet_server" in result.stdout
    assert "fleet-server/fleet-server-9.0.0-linux-x86_64.tar.gz" in result.stdout
    assert "search?package=nginx&kibana.version=9.0.0&prerelease=false" in result.stdout


def test_invalid_manifest_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: airgap/v1\nkind: Bundle\nstack:\n  version: 9.0.0\n"
                   "platforms:\n  arch: [x86_64, sparc]\n")
    result = run("plan", str(bad))
    assert result.returncode == 2
    assert f"{bad}:6: platforms.arch[1]: 'sparc' is not one of x86_64, arm64" in result.stderr
    assert result.stdout == ""


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan"]) == 2
    assert "Missing argument" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "plan" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert "airgap, version" in capsys.readouterr().out


def test_a_local_file_error_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run("fetch", "manifests/minimal.yaml", "-o", str(blocker / "bundle"))
    assert result.returncode == 1
    assert f"error: {blocker / 'bundle'}: Not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_starts_without_the_network_and_docker_stacks() -> None:
    # verify, inspect and export-image run on the isolated side, often: they must not pay
    # for importing httpx, the Docker client, YAML or aiohttp.
    probe = ("import sys, airgap.cli; "
             "print(' '.join(m for m in ('httpx', 'docker', 'yaml', 'aiohttp') "
             "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ""


def test_core_messages_name_the_options_a_user_types(tmp_path: Path) -> None:
    # Core code says sign_with and gnupg_home; the command line shows its own options.
    result = run("fetch", "manifests/minimal.yaml", "-o", str(tmp_path / "b"),
                 "--sign-with", "ops@example.org")
    assert result.returncode == 2
    assert "error: --sign-with needs --gnupg-home" in result.stderr
    assert "\x1f" not in result.stderr and "sign_with" not in result.stderr


def run_in_terminal(*args: str) -> tuple[int, str]:
    """Run ``python -m airgap`` on a pseudo-terminal, as an operator at a console does;
    return its exit code and everything the terminal showed."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    primary, secondary = pty.openpty()
    # A console 50 rows by 200 columns: what the tables are laid out for.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-m", "airgap", *args], cwd=REPO, env=env,
                               stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    shown = bytearray()
    try:
        while True:
            ready, _, _ = select.select([primary], [], [], 60)
            if not ready:
                raise TimeoutError(f"airgap {' '.join(args)} showed nothing for 60 s")
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed: the program ended
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    return process.wait(timeout=60), shown.decode(errors="replace")


def test_inspect_on_a_terminal_shows_images_defend_and_the_wheelhouse(
        rich_bundle: Path) -> None:
    code, shown = run_in_terminal("inspect", str(rich_bundle))
    assert code == 0, shown
    assert "docker.elastic.co/elastic-agent/elastic-agent:9.0.0" in shown
    assert "Endpoint 9.0.0: manifest_version 1.0.137, 3 artifacts" in shown
    assert "tools/airgap-0.1.0-wheelhouse" in shown
    assert "warning" not in shown


def test_plan_through_a_pipe_shows_defend_and_more_images(tmp_path: Path) -> None:
    manifest = tmp_path / "site.yaml"
    manifest.write_text("apiVersion: airgap/v1\nkind: Bundle\nstack: {version: 9.0.0}\n"
                        "integrations: [endpoint]\nimages: [elastic-agent]\n")
    result = run("plan", str(manifest))
    assert result.returncode == 0, result.stderr
    # In a pipe: one line per row, whole paths.
    assert "image: docker.elastic.co/elastic-agent/elastic-agent:9.0.0" in result.stdout
    assert "defend 9.0.0 downloads/endpoint/manifest/artifacts-9.0.0.zip ← integration " \
        "endpoint (Elastic Defend's protection updates)" in result.stdout
    assert "and 1 more image(s)" in result.stdout
@pytest.mark.parametrize("option", [["verify", "{dir}", "--trust-key"],
                                    ["verify", "{dir}", "--trust-signer"],
                                    ["export-image", "{dir}", "-o", "{dir}/x.tar", "--trust-key"],
                                    ["serve", "{dir}", "--tls-key", "{dir}/k", "--tls-cert"],
                                    ["fetch", "manifests/minimal.yaml", "-o", "{dir}/b",
                                     "--ca-cert"]])
def test_a_fifo_where_a_file_is_expected_is_refused_at_once(option: list[str],
                                                            tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # nobody writes to it: reading it would wait for ever
    (tmp_path / "k").write_text("key")
    result = run(*[o.format(dir=tmp_path) for o in option], str(fifo))
    assert result.returncode == 2, result.stderr
    assert "is not a regular file" in result.stderr and str(fifo) in result.stderr


def test_inspect_of_a_folder_that_is_no_bundle_says_so_with_exit_2(tmp_path: Path) -> None:
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"\xff\xd8")
    for folder in (other, tmp_path / "empty"):
        folder.mkdir(exist_ok=True)
        result = run("inspect", str(folder))
        assert result.returncode == 2, result.stderr
        assert f"{folder} is not an airgap bundle: it has none of SHA512SUMS, bundle.json" \
            in result.stderr
        assert "give the folder `airgap fetch -o` wrote" in result.stderr
    # A bundle in the making (a fetch was stopped) is one: what to do is another thing.
    making = tmp_path / "making"
    (making / ".airgap-next").mkdir(parents=True)
    result = run("inspect", str(making))
    assert result.returncode == 1 and "is not a complete airgap bundle" in result.stderr
    assert "run it again" in result.stderr
