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

import pytest

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


def fake_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()
               ) -> Path:
    """A pure wheel named ``name`` (importable as it) that requires ``requires``; airgap's
    ``airgap`` command prints its version: enough for pip."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n'
                               "def run():\n    print('airgap, version', __version__)\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                            + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    if name == "airgap":
        files[f"{info}/entry_points.txt"] = "[console_scripts]\nairgap = airgap:run\n"
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def wheelhouse_of(folder: Path, *, listed: tuple[str, ...] = ("airgap", "carried")) -> Path:
    """What ``build`` writes, for airgap 7.7.7 needing one dependency, ``carried``; only
    the wheels named in ``listed`` go into requirements.txt."""
    folder.mkdir()
    wheels = {"airgap": fake_wheel(folder, "airgap", "7.7.7", ("carried==1.0",)),
              "carried": fake_wheel(folder, "carried", "1.0")}
    (folder / wheelhouse.REQUIREMENTS).write_text(wheelhouse.requirements(
        {("3.11", "x86_64"): [wheels[name] for name in listed]}))
    script = folder / "install.sh"
    script.write_text(wheelhouse.install_script("7.7.7"))
    script.chmod(0o755)
    return folder


def install(house: Path, venv: Path) -> subprocess.CompletedProcess[str]:
    """``install.sh`` as the user guide runs it, with no index to fall back on."""
    env = {**os.environ, "PYTHON": sys.executable, "PIP_INDEX_URL": "http://127.0.0.1:9/"}
    return subprocess.run([str(house / "install.sh"), str(venv)], env=env,
                          capture_output=True, text=True, timeout=240)


def test_install_script_installs_from_the_folder_with_no_index(tmp_path: Path) -> None:
    house = wheelhouse_of(tmp_path / "airgap-7.7.7-wheelhouse")
    assert subprocess.run(["sh", "-n", str(house / "install.sh")]).returncode == 0
    assert "--require-hashes" in (house / "install.sh").read_text()
    result = install(house, tmp_path / "venv")
    assert result.returncode == 0, result.stderr
    assert "airgap, version 7.7.7" in result.stdout
    assert (tmp_path / "venv/bin/airgap").exists()
    assert list((tmp_path / "venv/lib").glob("python*/site-packages/carried"))


@pytest.mark.parametrize("change", ["a wheel swapped", "a dependency not listed"])
def test_install_script_installs_nothing_requirements_txt_does_not_vouch_for(
        change: str, tmp_path: Path) -> None:
    # SHA512SUMS vouches for the folder, but install.sh may be run on a copy nobody checked.
    house = wheelhouse_of(tmp_path / "airgap-7.7.7-wheelhouse",
                          listed=("airgap", "carried") if change == "a wheel swapped"
                          else ("airgap",))
    if change == "a wheel swapped":
        swapped = tmp_path / "swapped"
        swapped.mkdir()
        fake_wheel(swapped, "carried", "1.0", ("evil",)).replace(
            house / "carried-1.0-py3-none-any.whl")
    result = install(house, tmp_path / "venv")
    assert result.returncode != 0
    said = " ".join(result.stderr.split())
    if change == "a wheel swapped":
        assert "DO NOT MATCH THE HASHES" in said, said
        assert "carried" in said
    else:
        assert "Hashes are required in --require-hashes mode" in said, said
    assert not (tmp_path / "venv/bin/airgap").exists()


def test_requirements_pin_every_wheel_with_each_target_s_hashes(tmp_path: Path) -> None:
    wheels = {name: tmp_path / name for name in (
        "airgap-7.7.7-py3-none-any.whl", "PyYAML-6.0.2-cp311-cp311-manylinux_2_17_x86_64.whl",
        "PyYAML-6.0.2-cp313-cp313-manylinux_2_17_x86_64.whl",
        "typing_extensions-4.12.0-py3-none-any.whl", "typing_extensions-4.13.0-py3-none-any.whl")}
    for path in wheels.values():
        path.write_bytes(path.name.encode())
    air, yaml311, yaml313, old, new = wheels.values()
    text = wheelhouse.requirements({("3.11", "x86_64"): [air, yaml311, old],
                                    ("3.13", "x86_64"): [air, yaml313, new],
                                    ("3.13", "aarch64"): [air, new]})

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    logical = text.replace(" \\\n", " ").splitlines()
    assert logical == [
        f"airgap==7.7.7     --hash=sha256:{sha(air)}",
        "pyyaml==6.0.2 " + " ".join(f"    --hash=sha256:{h}"
                                    for h in sorted((sha(yaml311), sha(yaml313)))),
        'typing-extensions==4.12.0 ; (python_version == "3.11" and platform_machine == '
        f'"x86_64")     --hash=sha256:{sha(old)}',
        'typing-extensions==4.13.0 ; (python_version == "3.13" and platform_machine == '
        '"aarch64") or (python_version == "3.13" and platform_machine == "x86_64")     '
        f"--hash=sha256:{sha(new)}",
    ]
