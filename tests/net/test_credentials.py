"""Registry credentials: the environment, docker's config.json, credential helpers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from airgap.errors import AuthenticationError, UsageError
from airgap.net.credentials import Credentials, find_credentials


def config(tmp_path: Path, document: dict[str, object]) -> dict[str, str]:
    (tmp_path / "config.json").write_text(json.dumps(document))
    return {"DOCKER_CONFIG": str(tmp_path), "PATH": str(tmp_path)}


def auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_auths_entry_matched_by_host_whatever_its_spelling(tmp_path: Path) -> None:
    env = config(tmp_path, {"auths": {"https://registry.corp:5000/v2/": {"auth": auth("u", "p:w")},
                                      "other.example": {"auth": auth("x", "y")}}})
    found = find_credentials("registry.corp:5000", env)
    assert found == Credentials("u", "p:w", found.source if found else "")
    assert found is not None and "auths.https://registry.corp:5000/v2/" in found.source
    assert find_credentials("unknown.example", env) is None


def test_docker_hub_aliases(tmp_path: Path) -> None:
    env = config(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": auth("hub", "s")}}})
    found = find_credentials("registry-1.docker.io", env)
    assert found is not None and found.username == "hub"


def test_environment_wins_for_its_own_host_and_must_be_complete(tmp_path: Path) -> None:
    env = config(tmp_path, {"auths": {"r.example": {"auth": auth("file", "f")}}})
    env |= {"AIRGAP_REGISTRY": "R.example", "AIRGAP_REGISTRY_USERNAME": "envuser",
            "AIRGAP_REGISTRY_PASSWORD": "envpass"}
    found = find_credentials("r.example", env)
    assert found is not None and (found.username, found.password) == ("envuser", "envpass")
    with pytest.raises(UsageError, match="set both"):
        find_credentials("r.example", {"AIRGAP_REGISTRY_USERNAME": "only"})


def test_environment_credentials_go_to_their_registry_and_nowhere_else(tmp_path: Path) -> None:
    env = config(tmp_path, {"auths": {"other.example": {"auth": auth("file", "f")}}})
    env |= {"AIRGAP_REGISTRY": "https://registry.corp:5000/v2/",
            "AIRGAP_REGISTRY_USERNAME": "envuser", "AIRGAP_REGISTRY_PASSWORD": "envpass"}
    assert find_credentials("registry.corp:5000", env) is not None
    assert find_credentials("registry.corp", env) is None  # another port: another registry
    assert find_credentials("docker.elastic.co", env) is None
    other = find_credentials("other.example", env)  # docker's own entry still applies
    assert other is not None and other.username == "file"


def test_environment_credentials_without_their_host_are_refused(tmp_path: Path) -> None:
    env = {"AIRGAP_REGISTRY_USERNAME": "u", "AIRGAP_REGISTRY_PASSWORD": "p"}
    with pytest.raises(UsageError, match="AIRGAP_REGISTRY, the registry host they belong to"):
        find_credentials("docker.elastic.co", env)


def helper(tmp_path: Path, name: str, script: str) -> None:
    path = tmp_path / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_a_helper_with_nothing_for_the_host_means_anonymous(tmp_path: Path) -> None:
    # What docker-credential-helpers answer for an unknown server (exit 1).
    helper(tmp_path, "store", 'echo "credentials not found in native keychain"; exit 1\n')
    env = config(tmp_path, {"credsStore": "store", "credHelpers": {"h.example": "store"}})
    assert find_credentials("r.example", env) is None
    assert find_credentials("h.example", env) is None


@pytest.mark.parametrize("script", ['echo "error getting credentials - err: exit status 1, '
                                    'out: GDBus.Error: no secret service" >&2; exit 1\n',
                                    "echo not json\n", "kill -9 $$\n"])
def test_a_failing_helper_is_an_error_naming_it(tmp_path: Path, script: str) -> None:
    helper(tmp_path, "broken", script)
    for document in ({"credsStore": "broken"}, {"credHelpers": {"r.example": "broken"}}):
        env = config(tmp_path, document)
        with pytest.raises(AuthenticationError, match="docker-credential-broken") as failed:
            find_credentials("r.example", env)
        assert "r.example" in failed.value.message


def test_a_helper_gets_no_secret_of_airgap_s(tmp_path: Path) -> None:
    seen = tmp_path / "environment"
    helper(tmp_path, "spy", f"/usr/bin/env > {seen}\n"
           'echo \'{"Username": "u", "Secret": "s"}\'\n')
    env = config(tmp_path, {"credHelpers": {"spy.example": "spy"}})
    env |= {"AIRGAP_REGISTRY": "elsewhere.example", "AIRGAP_REGISTRY_USERNAME": "envuser",
            "AIRGAP_REGISTRY_PASSWORD": "hunter2", "AIRGAP_SIGN_PASSPHRASE": "sesame",
            "KEEP_ME": "yes"}
    assert find_credentials("spy.example", env) is not None
    child = seen.read_text()
    assert "KEEP_ME=yes" in child
    assert "hunter2" not in child and "sesame" not in child and "envuser" not in child


def test_credential_helper_protocol(tmp_path: Path) -> None:
    helper = tmp_path / "docker-credential-fake"
    helper.write_text('#!/bin/sh\nread server\n'
                      'echo "{\\"ServerURL\\":\\"$server\\",\\"Username\\":\\"helped\\",'
                      '\\"Secret\\":\\"s3cret\\"}"\n')
    helper.chmod(0o755)
    env = config(tmp_path, {"credHelpers": {"helped.example": "fake"}})
    found = find_credentials("helped.example", env)
    assert found is not None and (found.username, found.password) == ("helped", "s3cret")
    missing = config(tmp_path, {"credHelpers": {"helped.example": "absent"}})
    with pytest.raises(UsageError, match="docker-credential-absent is not installed"):
        find_credentials("helped.example", missing)


def test_malformed_entries_are_clear_errors(tmp_path: Path) -> None:
    env = config(tmp_path, {"auths": {"r.example": {"auth": "!!not base64"}}})
    with pytest.raises(UsageError, match="not base64 of user:password"):
        find_credentials("r.example", env)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(UsageError, match="cannot read docker's"):
        find_credentials("r.example", env)


def test_secret_never_in_repr() -> None:
    assert "hunter2" not in repr(Credentials("user", "hunter2", "test"))
