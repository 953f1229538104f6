"""Errors: settings named by the front end, several failures as one, exit codes."""

from __future__ import annotations

import pytest

from airgap.errors import (
    AirgapError,
    ExitCode,
    ManyErrors,
    UsageError,
    VerificationError,
    name_settings,
    raise_collected,
    setting,
)


def test_a_setting_reads_as_its_name_until_a_front_end_names_it() -> None:
    error = UsageError(f"{setting('sign_with')} needs {setting('gnupg_home')}",
                       details=[f"or drop {setting('sign_with')}"])
    assert str(error) == "sign_with needs gnupg_home\n  or drop sign_with"
    flags = {"sign_with": "--sign-with", "gnupg_home": "--gnupg-home"}
    assert name_settings(error.message, flags) == "--sign-with needs --gnupg-home"
    assert name_settings(error.details[0], flags) == "or drop --sign-with"


def test_many_errors_keep_the_settings_for_the_front_end_and_the_worst_code() -> None:
    errors = [AirgapError(f"one {setting('ca_cert')}"), VerificationError("two")]
    many = ManyErrors("two failed", errors)
    assert many.exit_code == ExitCode.VERIFICATION
    assert name_settings(many.text(), {"ca_cert": "--ca-cert"}) == \
        "two failed\n  one --ca-cert\n  two"


def test_collected_errors_raise_as_one_or_many() -> None:
    raise_collected([], "nothing")
    single = AirgapError("alone")
    with pytest.raises(AirgapError) as caught:
        raise_collected([single], "never shown")
    assert caught.value is single
    with pytest.raises(ManyErrors, match="2 failed") as many:
        raise_collected([single, UsageError("bad")], "2 failed")
    assert many.value.exit_code == ExitCode.USAGE
