"""What a /search answer offers, checked entry by entry, and which versions are taken."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airgap.errors import NotFoundError, ServerResponseError
from airgap.fetch.selection import choose, offered_versions
from tests.conftest import FIXTURES


def entry(version: str, name: str = "nginx", **fields: Any) -> dict[str, Any]:
    download = f"/epr/{name}/{name}-{version}.zip"
    return {"name": name, "version": version, "download": download,
            "signature_path": download + ".sig", **fields}


def test_the_golden_answer_is_read_as_the_registry_wrote_it() -> None:
    golden = json.loads((FIXTURES / "package-registry" / "search.json").read_text())
    names = {item["name"] for item in golden}
    offered = [o for name in sorted(names) for o in offered_versions(name, golden, "s")]
    assert len(offered) == len(golden)
    # 0.x versions are ordinary versions: the real answer holds 14 of them.
    assert sum(1 for o in offered if o.version.startswith("0.")) == 14
    # No entry of that file has a signature: each says so rather than invent a path.
    assert {o.signature_path for o in offered} == {None}
    assert all(o.download == f"/epr/{o.name}/{o.name}-{o.version}.zip" for o in offered)


def test_versions_come_oldest_first_in_semver_order_and_the_newest_is_taken() -> None:
    answer = [entry("1.10.0"), entry("1.9.0"), entry("2.0.0-beta1"), entry("0.4.0"),
              entry("9.0.0", name="other")]
    offered = offered_versions("nginx", answer, "s")
    assert [o.version for o in offered] == ["0.4.0", "1.9.0", "1.10.0", "2.0.0-beta1"]
    assert [o.version for o in choose("nginx", offered, version=None, all_versions=False,
                                      where="Kibana 9.0.0")] == ["2.0.0-beta1"]
    assert len(choose("nginx", offered, version=None, all_versions=True, where="k")) == 4
    assert [o.version for o in choose("nginx", offered, version="1.9.0", all_versions=False,
                                      where="k")] == ["1.9.0"]


def test_a_pinned_version_that_is_not_offered_lists_what_is() -> None:
    offered = offered_versions("nginx", [entry("1.9.0"), entry("2.0.0")], "s")
    with pytest.raises(NotFoundError, match=r"nginx@3\.0\.0: not a version compatible with "
                                            r"Kibana 9\.0\.0") as caught:
        choose("nginx", offered, version="3.0.0", all_versions=False, where="Kibana 9.0.0")
    assert "compatible versions: 1.9.0, 2.0.0" in caught.value.details[0]
    with pytest.raises(NotFoundError, match="package nginx: no version is compatible"):
        choose("nginx", [], version=None, all_versions=False, where="Kibana 9.0.0")


@pytest.mark.parametrize(("bad", "message"), [
    ({"download": "https://evil.example/nginx-2.0.0.zip"}, "download"),
    ({"download": "/epr/nginx/../../../etc/nginx-2.0.0.zip"}, "download"),
    ({"download": "/epr/nginx/nginx-2.0.0.zip?x=1"}, "download"),
    ({"download": "/epr/nginx/other-2.0.0.zip"}, "ending in nginx-2.0.0.zip"),
    ({"download": "//evil.example/epr/nginx/nginx-2.0.0.zip"}, "download"),
    ({"download": None}, "download"),
    ({"signature_path": "/epr/nginx/nginx-2.0.0.zip.asc"}, "signature_path"),
    ({"signature_path": 7}, "signature_path"),
    ({"version": "2.0"}, "is not a package version"),
    ({"version": "2.0.0\n"}, "is not a package version"),
])
def test_each_entry_is_checked_before_anything_is_taken(bad: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(ServerResponseError, match=message):
        offered_versions("nginx", [{**entry("2.0.0"), **bad}], "s")


def test_an_answer_that_is_no_list_or_too_long_is_refused() -> None:
    with pytest.raises(ServerResponseError, match="expected a JSON list"):
        offered_versions("nginx", {"name": "nginx"}, "s")
    with pytest.raises(ServerResponseError, match="more than any search answer holds"):
        offered_versions("nginx", [{}] * 10_001, "s")
