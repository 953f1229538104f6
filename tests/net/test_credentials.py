"""Registry credentials: the environment, docker's config.json, credential helpers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from airgap.errors import UsageError
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


def test_environment_wins_and_must_be_complete(tmp_path: Path) -> None:
    env = config(tmp_path, {"auths": {"r.example": {"auth": auth("file", "f")}}})
    env |= {"AIRGAP_REGISTRY_USERNAME": "envuser", "AIRGAP_REGISTRY_PASSWORD": "envpass"}
    found = find_credentials("r.example", env)
    assert found is not None and (found.username, found.password) == ("envuser", "envpass")
    with pytest.raises(UsageError, match="set both"):
        find_credentials("r.example", {"AIRGAP_REGISTRY_USERNAME": "only"})


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
