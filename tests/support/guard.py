"""Suite-wide guard: an internal error the package swallows still fails the test that caused it.

Tracing never raises into user code, so the package catches its own failures and logs them with
``exc_info``. Bad input must not take that path (it is validated and gets "no context" with a
plain debug line), so any record with ``exc_info`` from ``otel_dd_lambda.*`` is a bug unless the
test says it provokes one on purpose with ``@pytest.mark.internal_error_expected``.
Loaded by ``tests/conftest.py``; ``tests/test_guard.py`` loads it alone to show it works.
"""

from __future__ import annotations

import logging
from typing import Iterator

import pytest

PACKAGE_LOGGER = "otel_dd_lambda"


class _InternalErrorRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[0] is not None:
            self.records.append(record)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "internal_error_expected: the test provokes an internal error that the package logs with exc_info",
    )


@pytest.fixture(autouse=True)
def _fail_on_swallowed_internal_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    logger = logging.getLogger(PACKAGE_LOGGER)
    recorder = _InternalErrorRecorder()
    previous_level = logger.level
    logger.addHandler(recorder)
    # debug records must be created for the recorder to see them
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(previous_level)
    if recorder.records and request.node.get_closest_marker("internal_error_expected") is None:
        first = recorder.records[0]
        assert first.exc_info is not None
        exc_type, exc, _ = first.exc_info
        pytest.fail(
            "otel_dd_lambda swallowed %d internal error(s); first: %s: %r from %s (%s)"
            % (len(recorder.records), first.getMessage(), exc, first.name, getattr(exc_type, "__name__", exc_type)),
            pytrace=False,
        )
