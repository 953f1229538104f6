"""The variables airgap reads its secrets from, and the environment its children get.

Registry credentials and the signing passphrase may come from the environment (for CI
and scripts). They are for airgap alone: gpg, gpgconf and docker credential helpers are
started with :func:`child_environment`, the caller's environment less every one of them,
so that no child (nor whatever it starts in turn) sees a secret it was not given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: The registry host (``name[:port]``) the two variables below belong to.
ENV_REGISTRY = "AIRGAP_REGISTRY"
ENV_USERNAME = "AIRGAP_REGISTRY_USERNAME"
ENV_PASSWORD = "AIRGAP_REGISTRY_PASSWORD"  # noqa: S105 - the variable's name, not a secret
#: The passphrase of the operator's signing key, for CI (a terminal asks through pinentry).
ENV_PASSPHRASE = "AIRGAP_SIGN_PASSPHRASE"  # noqa: S105 - the variable's name
SECRETS = frozenset({ENV_USERNAME, ENV_PASSWORD, ENV_PASSPHRASE})


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) less airgap's secrets: what a child gets."""
    source = os.environ if environ is None else environ
    return {name: value for name, value in source.items() if name not in SECRETS}
