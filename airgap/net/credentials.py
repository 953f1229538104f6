"""Registry credentials, found where docker and skopeo users keep them.

In order: ``AIRGAP_REGISTRY_USERNAME`` / ``AIRGAP_REGISTRY_PASSWORD`` in the environment,
for the one registry host ``AIRGAP_REGISTRY`` names (never sent to any other: a fetch
talks to docker.elastic.co and a load to a private registry, and each gets only its
own); then docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, default
``~/.docker/config.json``): a credential helper named for the host (``credHelpers``), the
``auths`` entry for the host (base64 ``user:password`` in ``auth``), or the default
``credsStore``. A helper that has nothing for the host means anonymous access, as with
docker; a helper that fails is an error naming it. Credentials are held in memory only:
never logged, printed, passed in argv, written anywhere or left in a child's environment.
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

from airgap.documents import DocumentError, parse_json
from airgap.environment import ENV_PASSWORD, ENV_REGISTRY, ENV_USERNAME, child_environment
from airgap.errors import AuthenticationError, UsageError
from airgap.files import read_regular
from airgap.net.urls import host_port

#: What docker's credential helpers answer (exit 1) when they hold nothing for a host.
_NOT_FOUND = "credentials not found"
_HELPER_TIMEOUT = 60
_MAX_CONFIG = 4 << 20
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
    if username or password:
        if not (username and password):
            raise UsageError(f"set both {ENV_USERNAME} and {ENV_PASSWORD}, or neither")
        owner = env.get(ENV_REGISTRY, "").strip()
        if not owner:
            raise UsageError(f"{ENV_USERNAME} and {ENV_PASSWORD} are set, but not "
                             f"{ENV_REGISTRY}, the registry host they belong to",
                             details=[f"set {ENV_REGISTRY}=registry.example:5000 (its host "
                                      "and port): airgap sends them there and nowhere else"])
        if host_port(owner) == host.lower():
            return Credentials(username, password, f"${ENV_USERNAME}")
    path = docker_config_path(env)
    if not path.is_file():
        return None
    try:
        config = parse_json(read_regular(path, _MAX_CONFIG), max_size=_MAX_CONFIG)
    except OSError as exc:
        raise UsageError(f"cannot read docker's {path}: {exc.strerror or exc}") from None
    except DocumentError as exc:
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
        return _from_helper(str(store), host, host, env)
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


def _from_helper(helper: str, server: str, host: str, env: Mapping[str, str]
                 ) -> Credentials | None:
    """Ask ``docker-credential-<helper>`` (the docker credential helper protocol)."""
    program = shutil.which(f"docker-credential-{helper}", path=env.get("PATH"))
    if program is None:
        raise UsageError(f"docker's config names the credential helper {helper!r} for {host}, "
                         f"but docker-credential-{helper} is not installed",
                         details=[f"or set {ENV_USERNAME} and {ENV_PASSWORD}"])
    name = f"docker-credential-{helper}"
    try:
        answer = subprocess.run([program, "get"], input=server, capture_output=True, text=True,
                                timeout=_HELPER_TIMEOUT, check=False,
                                env=child_environment(env))
    except subprocess.TimeoutExpired:
        raise AuthenticationError(f"the credential helper {name} did not answer for {host} "
                                  f"within {_HELPER_TIMEOUT} s", details=[_FIX]) from None
    except OSError as exc:
        raise AuthenticationError(f"the credential helper {name} cannot be run for {host}: "
                                  f"{exc.strerror or exc}", details=[_FIX]) from None
    said = (answer.stdout.strip() or answer.stderr.strip())[:300]
    if answer.returncode != 0:
        if _NOT_FOUND in said.lower():
            return None  # it holds nothing for this host: anonymous, as docker does
        raise AuthenticationError(f"the credential helper {name} failed for {host} (exit "
                                  f"{answer.returncode}): {said or 'it said nothing'}",
                                  details=[_FIX])
    try:
        data = json.loads(answer.stdout)
        return Credentials(str(data["Username"]), str(data["Secret"]), name)
    except (ValueError, KeyError, TypeError):
        raise AuthenticationError(f"the credential helper {name} gave an answer airgap "
                                  f"cannot read for {host}", details=[_FIX]) from None


_FIX = (f"fix the helper (try `docker login` again), or set {ENV_REGISTRY}, {ENV_USERNAME} "
        f"and {ENV_PASSWORD}")
