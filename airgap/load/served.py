"""What ``airgap serve`` checks before it serves a bundle: the same trust rule as
``airgap load --artifacts`` (:mod:`airgap.bundle.vouch`).

A bundle's ``downloads/`` and ``security/`` leave it as soon as an agent or an endpoint
asks for them, so the whole bundle is verified first, and something from outside it (the
pinned Elastic key, ``--trust-signer``, or ``--trust-key`` for the operator's signature)
must vouch for those two folders. A tree ``load --artifacts`` laid out is no bundle: load
verified it as it laid it out, and there is nothing left here to check it against.
"""

from __future__ import annotations

from pathlib import Path

from airgap.bundle.description import NotABundle
from airgap.bundle.layout import DOWNLOADS, SECURITY
from airgap.bundle.lock import refuse_while_written
from airgap.bundle.verify import (
    BundleRefused,
    VerifyReport,
    VerifySettings,
    verify_bundle,
)
from airgap.errors import UsageError, setting
from airgap.reporter import Reporter

#: The folders ``airgap serve`` takes out of a bundle: what must be vouched for.
SERVED_AREAS = frozenset({DOWNLOADS, SECURITY})


def verify_served(bundle: Path, is_bundle: bool, *, skip_verify: bool,
                  trust_keys: tuple[Path, ...], trust_signers: tuple[Path, ...],
                  reporter: Reporter) -> VerifyReport | None:
    """Verify ``bundle`` before it is served (None when not verified: a laid-out tree, or
    ``skip_verify``); :class:`BundleRefused` when it fails, :class:`UsageError` for trust
    options given with a tree."""
    given = [name for name, value in (("skip_verify", skip_verify),
                                      ("trust_keys", trust_keys),
                                      ("trust_signers", trust_signers)) if value]
    if not is_bundle:
        if given:
            raise UsageError(f"{setting(given[0])} is for a bundle, and {bundle} is a "
                             "downloads tree (no downloads/ inside): there is no bundle "
                             "to verify", details=[
                                 "`airgap load --artifacts` verified the tree as it laid it "
                                 f"out: serve it without {setting(given[0])}, or serve the "
                                 "bundle itself"])
        return None
    if skip_verify:
        reporter.warning(f"{setting('skip_verify')}: the bundle is NOT being checked; "
                         "whatever it holds now is what gets served")
        return None
    refuse_while_written(bundle)
    try:
        report = verify_bundle(VerifySettings(bundle, trust_keys, trust_signers,
                                              scope=SERVED_AREAS), reporter)
    except NotABundle as exc:
        raise UsageError(exc.message, details=[
            f"give a bundle `airgap fetch -o` wrote, or serve a downloads tree as it is: "
            f"{bundle / DOWNLOADS}"]) from None
    if not report.ok:
        raise BundleRefused(report, "nothing was served")
    for warning in report.warnings:
        reporter.warning(warning)
    reporter.info(f"verified {bundle}: {report.files} files re-hashed, {report.signatures} "
                  f"signatures re-checked, operator signature: {report.operator_signature}")
    return report
