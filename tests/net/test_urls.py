"""The one check every URL airgap is given passes, and hosts as credentials are filed."""

from __future__ import annotations

import pytest

from airgap.net.urls import BadURL, check_url, host_port


@pytest.mark.parametrize(("given", "folder", "kept"), [
    ("https://epr.corp:8443", False, "https://epr.corp:8443"),
    ("https://epr.corp:8443/", False, "https://epr.corp:8443"),
    ("https://files.corp/downloads", True, "https://files.corp/downloads/"),
    ("http://[::1]:8000/downloads/", True, "http://[::1]:8000/downloads/"),
])
def test_urls_are_kept_as_the_settings_hold_them(given: str, folder: bool, kept: str) -> None:
    assert check_url(given, folder=folder) == kept


@pytest.mark.parametrize(("given", "root_only", "why"), [
    ("epr.corp:8080", False, "is not an http:// or https:// URL"),
    ("ftp://mirror/downloads", False, "is not an http:// or https:// URL"),
    ("http://127.0.0.1:abc", False, "is not a valid URL"),
    ("https://epr.example/?x=1", False, "must not have a query or fragment"),
    ("https://mirror.example/v2/", True, "give the registry's root URL"),
])
def test_urls_airgap_cannot_use_are_refused_naming_them(given: str, root_only: bool,
                                                        why: str) -> None:
    with pytest.raises(BadURL, match=why) as refused:
        check_url(given, folder=False, root_only=root_only)
    assert repr(given) in str(refused.value)


def test_credentials_in_a_url_are_refused_and_never_repeated() -> None:
    with pytest.raises(BadURL) as refused:
        check_url("https://bob:hunter2@mirror.example/", folder=True)
    assert refused.value.credentials and "hunter2" not in str(refused.value)


@pytest.mark.parametrize(("given", "host"), [
    ("https://Registry.Corp:5000/v2/", "registry.corp:5000"),
    ("registry.corp", "registry.corp"),
    ("http://127.0.0.1:5000", "127.0.0.1:5000"),
])
def test_host_port_is_the_key_credentials_are_filed_under(given: str, host: str) -> None:
    assert host_port(given) == host
