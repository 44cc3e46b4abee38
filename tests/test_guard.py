"""The suite-wide guard in conftest.py sees a bug that the package swallows.

A ``TypeError`` planted in the carriers' JSON parse (an SQS event's ``_datadog``) is caught by extraction (tracing never raises) and
extraction still answers "no context", so a test that only checks "no exception, no context" would
pass. Under the guard, the same test fails; with the marker it passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS = Path(__file__).parent

PLANTED = '''
import json
from pathlib import Path

import pytest

from otel_dd_lambda.carriers import common
from otel_dd_lambda.extract import extract_context

EVENT = json.loads(Path(%(event)r).read_text())


def _planted(raw):
    raise TypeError("planted bug")


@pytest.fixture
def planted_bug(monkeypatch):
    monkeypatch.setattr(common, "loads_object", _planted)  # what parses every String _datadog attribute


def test_sqs_event_without_a_raise(planted_bug):
    extract_context(EVENT)  # what a hostile-input test checks: no exception reaches the caller


@pytest.mark.internal_error_expected
def test_sqs_event_expecting_the_error(planted_bug):
    extract_context(EVENT)


def test_sqs_event_without_the_bug():
    assert extract_context(EVENT) is not None
'''


def test_a_swallowed_planted_bug_fails_the_test(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # the guard alone, as the suite's conftest loads it
    pytester.makeconftest("from tests.support.guard import _fail_on_swallowed_internal_errors, pytest_configure\n")
    monkeypatch.setenv("PYTHONPATH", str(TESTS.parent))
    pytester.makepyfile(test_planted=PLANTED % {"event": str(TESTS / "fixtures" / "events" / "sqs-batch.json")})
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    # the guard fails a test at teardown, so the call phase still counts as passed
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_sqs_event_without_a_raise*",
        "otel_dd_lambda swallowed 1 internal error(s)*TypeError('planted bug')*",
    ])
