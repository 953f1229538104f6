"""Talking to servers: the shared HTTP client (TLS, retries, redirects, credentials kept to
their origin), the download engine that streams, hashes and resumes, registry
credentials, and the one check every URL airgap is given passes.
"""

from airgap.net.credentials import Credentials, find_credentials
from airgap.net.download import Download, Downloader, Fetched
from airgap.net.transport import NetworkSettings, make_client
from airgap.net.urls import BadURL, check_url, host_port, split_url

__all__ = [
    "BadURL", "Credentials", "Download", "Downloader", "Fetched", "NetworkSettings",
    "check_url", "find_credentials", "host_port", "make_client", "split_url",
]
