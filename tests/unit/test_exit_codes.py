"""Exit codes monitoring can trust: each error class carries one, and several credentials give the most severe."""

from __future__ import annotations

import pytest

from rotator.core import errors
from rotator.core.errors import ExitCode, most_severe


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.ConfigError("x"), ExitCode.BAD_INPUT),
        (errors.StoreCorrupt("x"), ExitCode.BAD_INPUT),
        (errors.StoreUnavailable("x"), ExitCode.UNAVAILABLE),
        (errors.BluumUnavailable("x"), ExitCode.UNAVAILABLE),
        (errors.BluumServerError("x"), ExitCode.UNAVAILABLE),
        (errors.BluumRateLimited("x"), ExitCode.UNAVAILABLE),
        (errors.BluumUnexpectedResponse("x"), ExitCode.BAD_INPUT),
        (errors.BluumAuthError("x"), ExitCode.BAD_INPUT),
        (errors.RotationInProgress("x"), ExitCode.IN_PROGRESS),
        (errors.RotationFailed("x"), ExitCode.ROLLED_BACK),
        (errors.RotationIncomplete("x"), ExitCode.INCOMPLETE),
    ],
)
def test_each_error_exits_with_its_code(error: errors.RotatorError, code: ExitCode):
    assert error.exit_code is code


def test_incomplete_outranks_unavailable_which_outranks_the_rest():
    assert most_severe([ExitCode.UNAVAILABLE, ExitCode.INCOMPLETE]) is ExitCode.INCOMPLETE
    assert most_severe([ExitCode.IN_PROGRESS, ExitCode.UNAVAILABLE, ExitCode.BAD_INPUT]) is ExitCode.UNAVAILABLE
    assert most_severe([ExitCode.OK, ExitCode.ROLLED_BACK, ExitCode.BAD_INPUT]) is ExitCode.BAD_INPUT
    assert most_severe([]) is ExitCode.OK
