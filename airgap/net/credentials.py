"""Registry credentials, found where docker and skopeo users keep them.

In order: ``AIRGAP_REGISTRY_USERNAME`` / ``AIRGAP_REGISTRY_PASSWORD`` in the environment;
then docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, default
``~/.docker/config.json``): a credential helper named for the host (``credHelpers``), the
``auths`` entry for the host (base64 ``user:password`` in ``auth``), or the default
``credsStore``. Credentials are held in memory only: never logged, printed, passed in
argv or written anywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap.errors import AuthenticationError, UsageError
from airgap.net.urls import host_port

ENV_USERNAME = "AIRGAP_REGISTRY_USERNAME"
ENV_PASSWORD = "AIRGAP_REGISTRY_PASSWORD"  # noqa: S105 - the variable's name, not a secret
_DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
                    "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    """A username and secret for one registry; ``repr`` never shows the secret."""

    username: str
    password: str = field(repr=False)
    source: str = ""

    def basic(self) -> str:
        """The value of a Basic ``Authorization`` header."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


def docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where docker keeps its client configuration."""
    env = os.environ if environ is None else environ
    folder = env.get("DOCKER_CONFIG")
    return Path(folder) / "config.json" if folder else Path.home() / ".docker" / "config.json"


def find_credentials(host: str, environ: Mapping[str, str] | None = None
                     ) -> Credentials | None:
    """The credentials to use for registry ``host`` (``name[:port]``), if any."""
    env = os.environ if environ is None else environ
    username, password = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
    if username and password:
        return Credentials(username, password, f"${ENV_USERNAME}")
    if username or password:
        raise UsageError(f"set both {ENV_USERNAME} and {ENV_PASSWORD}, or neither")
    path = docker_config_path(env)
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise UsageError(f"cannot read docker's {path}: {exc}") from None
    if not isinstance(config, dict):
        raise UsageError(f"{path}: not a docker client configuration")
    return _from_config(config, host.lower(), path, env)


def _from_config(config: dict[str, Any], host: str, path: Path, env: Mapping[str, str]
                 ) -> Credentials | None:
    candidates = {host} | (set(_DOCKER_HUB_KEYS) if host in _DOCKER_HUB_KEYS else set())
    helpers = config.get("credHelpers") or {}
    for key, helper in helpers.items():
        if host_port(key) in candidates:
            return _from_helper(str(helper), key, host, env)
    for key, entry in (config.get("auths") or {}).items():
        if host_port(key) not in candidates or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            return _decode_auth(str(entry["auth"]), f"{path} (auths.{key})")
        if entry.get("username") and entry.get("password"):
            return Credentials(str(entry["username"]), str(entry["password"]), str(path))
    store = config.get("credsStore")
    if store:
        return _from_helper(str(store), host, host, env, missing_ok=True)
    return None


def _decode_auth(value: str, source: str) -> Credentials:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise UsageError(f"{source}: `auth` is not base64 of user:password") from None
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        raise UsageError(f"{source}: `auth` is not base64 of user:password")
    return Credentials(username, password, source)


def _from_helper(helper: str, server: str, host: str, env: Mapping[str, str], *,
                 missing_ok: bool = False) -> Credentials | None:
    """Ask ``docker-credential-<helper>`` (the docker credential helper protocol)."""
    program = shutil.which(f"docker-credential-{helper}", path=env.get("PATH"))
    if program is None:
        raise UsageError(f"docker's config names the credential helper {helper!r} for {host}, "
                         f"but docker-credential-{helper} is not installed",
                         details=[f"or set {ENV_USERNAME} and {ENV_PASSWORD}"])
    try:
        answer = subprocess.run([program, "get"], input=server, capture_output=True,
                                text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AuthenticationError(f"credential helper {helper} did not answer within 60 s "
                                  f"for {host}") from exc
    except OSError as exc:
        raise AuthenticationError(f"credential helper {helper} cannot be run: {exc}") from exc
    if answer.returncode != 0:
        if missing_ok:
            return None
        raise AuthenticationError(f"credential helper {helper} has nothing for {host}: "
                                  f"{answer.stderr.strip() or answer.stdout.strip()}")
    try:
        data = json.loads(answer.stdout)
        return Credentials(str(data["Username"]), str(data["Secret"]),
                           f"docker-credential-{helper}")
    except (ValueError, KeyError, TypeError, RecursionError):
        raise AuthenticationError(f"credential helper {helper} gave an answer airgap "
                                  "cannot read") from None
