"""``make wheelhouse``'s script: the pip commands it runs, and its install.sh installing from
the folder alone into a fresh virtual environment with no index (the full wheelhouse,
built from PyPI, is built and installed from by .ci/run)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import airgap
from scripts import wheelhouse


def test_versions_and_platforms_cover_what_a_site_may_run() -> None:
    assert wheelhouse.PYTHONS == ("3.11", "3.12", "3.13")
    assert set(wheelhouse.PLATFORMS) == {"x86_64", "aarch64"}
    assert wheelhouse.airgap_version() == airgap.__version__


def test_download_asks_for_wheels_only_for_another_python_and_platform(tmp_path: Path) -> None:
    argv = wheelhouse.download_command("python3", tmp_path / "airgap-0.1.0-py3-none-any.whl",
                                       tmp_path, "3.13", "aarch64")
    assert argv[:4] == ["python3", "-m", "pip", "download"]
    assert "--only-binary=:all:" in argv
    assert argv[argv.index("--python-version") + 1] == "3.13"
    assert argv[argv.index("--implementation") + 1] == "cp"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--abi"] == ["cp313", "abi3", "none"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--platform"] == [
        "manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert argv[-1].endswith("airgap-0.1.0-py3-none-any.whl")


def fake_airgap_wheel(folder: Path, version: str) -> Path:
    """A wheel named airgap whose ``airgap`` command prints its version: enough for pip."""
    files = {
        "airgap/__init__.py": f'__version__ = "{version}"\n'
                              "def run():\n    print('airgap, version', __version__)\n",
        f"airgap-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: airgap\n"
                                                f"Version: {version}\n",
        f"airgap-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                             "Root-Is-Purelib: true\nTag: py3-none-any\n",
        f"airgap-{version}.dist-info/entry_points.txt": "[console_scripts]\n"
                                                        "airgap = airgap:run\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"airgap-{version}.dist-info/RECORD,,")
    files[f"airgap-{version}.dist-info/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"airgap-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def test_install_script_installs_from_the_folder_with_no_index(tmp_path: Path) -> None:
    house = tmp_path / "airgap-7.7.7-wheelhouse"
    house.mkdir()
    fake_airgap_wheel(house, "7.7.7")
    script = house / "install.sh"
    script.write_text(wheelhouse.install_script("7.7.7"))
    script.chmod(0o755)
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    env = {**os.environ, "PYTHON": sys.executable, "PIP_INDEX_URL": "http://127.0.0.1:9/"}
    result = subprocess.run([str(script), str(tmp_path / "venv")], env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "airgap, version 7.7.7" in result.stdout
    assert (tmp_path / "venv/bin/airgap").exists()
