"""A client for the OCI distribution API (registry v2): auth, manifests, blobs.

Authentication follows the registry's ``401`` challenge: ``Bearer`` tokens from the
realm it names (anonymous, or with credentials), refreshed before they expire, or
``Basic`` with credentials. Credentials only ever go to the registry and its realm: never
past a redirect that leaves the realm's origin (see :func:`~airgap.net.transport.open_stream`),
and never to a plain-HTTP realm of an HTTPS registry.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from airgap.errors import (
    AuthenticationError,
    NetworkError,
    NotFoundError,
    ServerResponseError,
)
from airgap.net.credentials import Credentials
from airgap.net.download import Download, Downloader
from airgap.net.transport import login_hint, open_stream, same_origin
from airgap.net.urls import host_port
from airgap.oci import media

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_EXPIRY_MARGIN = 10.0


@dataclass(frozen=True)
class _Challenge:
    scheme: str
    params: Mapping[str, str]


def parse_challenge(header: str) -> _Challenge:
    """The scheme and parameters of a ``WWW-Authenticate`` header."""
    scheme, _, rest = header.strip().partition(" ")
    return _Challenge(scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest)))


class RegistryAuth:
    """Answers a registry's challenges for one repository; safe to share across threads."""

    def __init__(self, downloader: Downloader, registry_url: str, scope: str,
                 credentials: Credentials | None) -> None:
        self.downloader = downloader
        self.origin = httpx.URL(registry_url)
        self.scope = scope
        self.credentials = credentials
        self._lock = threading.Lock()
        self._header: str | None = None
        self._expires = float("inf")
        self._bearer: _Challenge | None = None

    def headers_for(self, url: httpx.URL) -> Mapping[str, str]:
        """The Authorization header for the registry (refreshing an expiring token);
        nothing for another origin (an upload location on a storage host, say)."""
        if not same_origin(url, self.origin):
            return {}
        with self._lock:
            if self._bearer is not None and time.monotonic() > self._expires:
                self._fetch_token(self._bearer)
            return {"Authorization": self._header} if self._header else {}

    def handle_challenge(self, response: httpx.Response) -> bool:
        """Get what the ``401`` asks for; False when there is nothing more to try."""
        if not same_origin(response.request.url, self.origin):
            return False
        challenge = parse_challenge(response.headers.get("www-authenticate", ""))
        with self._lock:
            if challenge.scheme == "bearer" and "realm" in challenge.params:
                self._bearer = challenge
                self._fetch_token(challenge)
                return True
            if challenge.scheme == "basic" and self.credentials is not None:
                if self._header == self.credentials.basic():
                    return False  # already sent: the registry refused them
                self._header = self.credentials.basic()
                return True
        return False

    def _fetch_token(self, challenge: _Challenge) -> None:
        try:
            realm = httpx.URL(challenge.params["realm"])
        except httpx.InvalidURL as exc:
            raise ServerResponseError(f"{self.origin}: the token realm "
                                      f"{challenge.params['realm']!r} is not a URL ({exc})"
                                      ) from None
        if realm.scheme not in ("http", "https"):
            raise ServerResponseError(f"{self.origin}: token realm {realm} is not an HTTP URL")
        if realm.scheme == "http" and self.origin.scheme == "https":
            # Credentials, and the token that stands for them, never travel in clear text.
            raise ServerResponseError(
                f"{self.origin}: the registry speaks HTTPS but sends clients for tokens to "
                f"{realm}, in clear text; refusing to send credentials or fetch a token there",
                details=["the registry's token realm must be an https:// URL"])
        scope = self.scope or challenge.params.get("scope", "")
        params = {"service": challenge.params.get("service", ""), "scope": scope}
        url = str(realm.copy_merge_params({k: v for k, v in params.items() if v}))
        headers = {"Authorization": self.credentials.basic()} if self.credentials else {}
        try:
            answer = self.downloader.fetch_small(url, headers=headers,
                                                 accept="application/json", max_size=1 << 20)
        except AuthenticationError:
            # Named after the registry: that is what a person logs in to, not its token
            # service (another host or port).
            who = f"the credentials from {self.credentials.source}" if self.credentials \
                else "an anonymous request"
            registry = host_port(str(self.origin))
            raise AuthenticationError(
                f"the registry {registry} refused {who} for {scope} (its token service "
                f"{host_port(str(realm))} said no)", details=[login_hint(registry)]) from None
        document = answer.json()
        try:
            token = document.get("token") or document.get("access_token")
            lifetime = float(document.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise ServerResponseError(f"{realm}: the token answer is not a JSON object") from None
        if not isinstance(token, str) or not token:
            raise ServerResponseError(f"{realm}: the token answer holds no token")
        self._header = f"Bearer {token}"
        # Renew a little before the registry would refuse it.
        self._expires = time.monotonic() + max(lifetime - min(_EXPIRY_MARGIN, lifetime / 4), 0.5)


class RegistryClient:
    """Reads one repository of one registry."""

    def __init__(self, downloader: Downloader, registry_url: str, repository: str,
                 credentials: Credentials | None, *, push: bool = False) -> None:
        self.downloader = downloader
        self.base = registry_url.rstrip("/")
        self.repository = repository
        action = "pull,push" if push else "pull"
        self.auth = RegistryAuth(downloader, self.base,
                                 f"repository:{repository}:{action}", credentials)

    def url(self, kind: str, reference: str) -> str:
        """``<base>/v2/<repository>/<kind>/<reference>``."""
        return f"{self.base}/v2/{self.repository}/{kind}/{reference}"

    def ping(self) -> None:
        """Check that this is a registry speaking the v2 API, and learn how it wants auth."""
        url = f"{self.base}/v2/"
        try:
            response = self.downloader.retrying(
                lambda: open_stream(self.downloader.client, url, auth=self.auth), url)
        except NetworkError as exc:
            raise NetworkError(f"cannot reach the registry at {self.base}: {exc.message}",
                               details=exc.details) from None
        except NotFoundError:
            raise ServerResponseError(f"{self.base} does not serve the registry API "
                                      "(/v2/ not found)") from None
        response.close()

    def manifest(self, reference: str) -> tuple[bytes, str, str]:
        """The manifest or index ``reference`` (tag or digest) names: its bytes, media type
        and digest, refused unless what arrived is what the registry says it is."""
        url = self.url("manifests", reference)
        answer = self.downloader.fetch_small(url, auth=self.auth, accept=media.ACCEPT_MANIFESTS,
                                             max_size=media.MAX_MANIFEST_SIZE)
        media_type = answer.headers.get("content-type", "").split(";")[0].strip()
        if media_type not in media.INDEX_TYPES | media.MANIFEST_TYPES:
            raise ServerResponseError(f"{url}: answered {media_type or 'no media type'!r}, "
                                      "not an image manifest or index")
        digest = media.sha256_digest(answer.content)
        announced = answer.headers.get("docker-content-digest")
        if announced and announced != digest:
            raise ServerResponseError(f"{url}: the body hashes to {digest}, but the registry "
                                      f"announces {announced}")
        if reference.startswith("sha256:") and reference != digest:
            raise ServerResponseError(f"{url}: asked for {reference}, got {digest}")
        document = media.load_json(answer.content, url)
        declared = document.get("mediaType")
        if declared is not None and declared != media_type:
            raise ServerResponseError(f"{url}: the body says {declared!r} but was served as "
                                      f"{media_type!r}")
        return answer.content, media_type, digest

    def blob_download(self, descriptor: media.Descriptor, dest: Path, label: str, *,
                      existing: Path | None = None, phase: str = "") -> Download:
        """A download of ``descriptor``'s blob to ``dest``, held to its size and digest
        (a copy at ``existing`` that matches is used instead)."""
        return Download(self.url("blobs", descriptor.digest), dest, label,
                        size=descriptor.size, sha256=descriptor.hex, auth=self.auth,
                        existing=existing, phase=phase)
