"""Fixtures shared by the whole suite: the internal-error guard and the real peers."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.support.agent import TestAgent, run_test_agent
from tests.support.guard import _fail_on_swallowed_internal_errors, pytest_configure  # noqa: F401 (plugin)
from tests.support.moto_server import moto_server

# ---------------------------------------------------------------- shared real peers


@pytest.fixture(scope="module")
def agent() -> Iterator[TestAgent]:
    """A real ddapm-test-agent for the module."""
    with run_test_agent() as running:
        yield running


@pytest.fixture(scope="module")
def sessionless_agent() -> Iterator[TestAgent]:
    """A real ddapm-test-agent that keeps every trace of the module (for processes whose
    requests carry no session token)."""
    with run_test_agent() as running:
        running.start_session(None)
        yield running


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A moto server's URL for the module."""
    with moto_server() as url:
        yield url
