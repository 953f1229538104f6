"""URLs and hosts as airgap accepts them: every URL or host it is given passes here."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

import httpx


class BadURL(ValueError):
    """A URL airgap cannot use; the message names it (unless it holds credentials, which
    are never repeated) and says why. ``credentials`` when that is the reason."""

    def __init__(self, message: str, *, credentials: bool = False) -> None:
        super().__init__(message)
        self.credentials = credentials


def split_url(text: str) -> SplitResult | None:
    """``text`` in parts, or None when urllib cannot read its port or the HTTP client
    would refuse its host (IDNA)."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        httpx.URL(text)
    except (ValueError, httpx.InvalidURL):  # idna's errors are ValueErrors
        return None
    return parts


def check_url(text: str, *, folder: bool, root_only: bool = False) -> str:
    """``text`` as an http(s) URL airgap can keep: a ``folder`` ends with ``/`` (other
    URLs lose a trailing one); with ``root_only`` (a registry) no path is allowed.

    Raises :class:`BadURL`. Credentials, a query or a fragment are refused: they would
    end up in bundle.json, the plan, the settings written and every log line.
    """
    parts = split_url(text)
    if parts is None:
        raise BadURL(f"{text!r} is not a valid URL (check its host and port)")
    if parts.scheme not in ("http", "https") or not parts.hostname \
            or any(c.isspace() or not c.isprintable() for c in text):
        raise BadURL(f"{text!r} is not an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise BadURL("must not hold a user name or password", credentials=True)
    if parts.query or parts.fragment:
        raise BadURL(f"{text!r} must not have a query or fragment")
    if root_only and parts.path not in ("", "/"):
        raise BadURL(f"{text!r}: give the registry's root URL, without a path")
    if folder:
        return text if text.endswith("/") else text + "/"
    return text.rstrip("/")


def host_port(url: str) -> str:
    """The ``host[:port]`` of a URL or of a docker ``auths`` key, lower-cased:
    ``https://Host:5000/v2/`` -> ``host:5000``. Credentials are filed under it."""
    text = url.split("://", 1)[-1]
    return text.split("/", 1)[0].lower()
