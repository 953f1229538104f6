"""``fetch --with-tool``: a wheelhouse copied into the bundle's tools/, checked first."""

from __future__ import annotations

from pathlib import Path

import pytest

from airgap.bundle.staging import Staging
from airgap.errors import UsageError
from airgap.fetch.tools import check_wheelhouse, copy_wheelhouse
from airgap.trust.digests import hash_file
from tests.conftest import make_wheelhouse
from tests.medium import add_mac_and_windows_files


def test_a_wheelhouse_is_copied_whole_hashed_and_executable_where_it_was(
        tmp_path: Path) -> None:
    source = make_wheelhouse(tmp_path / "airgap-0.1.0-wheelhouse")
    copied = copy_wheelhouse(source, Staging(tmp_path / "bundle"))
    target = Staging(tmp_path / "bundle").path("tools/airgap-0.1.0-wheelhouse")
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in source.iterdir())
    for fetched in copied:
        assert fetched.digests == hash_file(fetched.dest)
        assert fetched.dest.read_bytes() == (source / fetched.dest.name).read_bytes()
    assert (target / "install.sh").stat().st_mode & 0o777 == 0o755
    assert (target / "airgap-0.1.0-py3-none-any.whl").stat().st_mode & 0o777 == 0o644
    assert not list(target.glob(".*.part"))


@pytest.mark.parametrize(("change", "message"), [
    ("no install", "is not an airgap wheelhouse"),
    ("no requirements", "needs airgap's wheel, requirements.txt and install.sh"),
    ("no airgap", "is not an airgap wheelhouse"),
    ("subfolder", "'deps' is not a plain file"),
    ("symlink", "'evil.whl' is not a plain file"),
    ("named like Finder's", "'._evil.whl' is not a plain file"),
    ("missing", "no such folder"),
])
def test_what_is_no_wheelhouse_is_refused(tmp_path: Path, change: str, message: str) -> None:
    source = make_wheelhouse(tmp_path / "wh")
    if change == "no install":
        (source / "install.sh").unlink()
    elif change == "no requirements":
        (source / "requirements.txt").unlink()
    elif change == "no airgap":
        (source / "airgap-0.1.0-py3-none-any.whl").unlink()
    elif change == "subfolder":
        (source / "deps").mkdir()
    elif change == "symlink":
        (source / "evil.whl").symlink_to("/etc/passwd")
    elif change == "named like Finder's":
        (source / "._evil.whl").write_bytes(b"PK\3\4 a wheel, not Finder's")
    else:
        source = tmp_path / "nowhere"
    with pytest.raises(UsageError, match=message):
        check_wheelhouse(source)


def test_finders_files_in_a_wheelhouse_on_a_mac_formatted_medium_are_left_behind(
        tmp_path: Path) -> None:
    source = make_wheelhouse(tmp_path / "airgap-0.1.0-wheelhouse")
    names = sorted(p.name for p in source.iterdir())
    add_mac_and_windows_files(source, top=False)
    copy_wheelhouse(source, Staging(tmp_path / "bundle"))
    target = Staging(tmp_path / "bundle").path("tools/airgap-0.1.0-wheelhouse")
    assert sorted(p.name for p in target.iterdir()) == names
