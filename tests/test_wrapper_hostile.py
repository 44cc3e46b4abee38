"""Hostile events through the wrapper never change the handler's result or exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_dd_lambda.runtime import cold_start
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.wrapper_support import FakeContext, pipeline, sample

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=30,
)
# keys the extractors look at, so hypothesis reaches the parsers and not just the type checks
trigger_keys = st.sampled_from([
    "Records", "headers", "multiValueHeaders", "requestContext", "detail", "detail-type", "source", "_datadog",
    "eventSource", "messageAttributes", "body", "Sns", "kinesis", "version", "routeKey", "time", "awslogs",
    "x-datadog-trace-id", "x-datadog-parent-id", "traceparent", "X-Amzn-Trace-Id", "Execution", "State",
])
shaped = st.recursive(
    json_values,
    lambda children: st.dictionaries(trigger_keys, children, max_size=6) | st.lists(children, max_size=3),
    max_leaves=40,
)

PROVIDER, MEMORY = pipeline()


class Weird:
    def __str__(self):
        raise RuntimeError("no str")

    __repr__ = __str__


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("DD_COLD_START_TRACING", "false")
    cold_start._reset_for_tests()


def _check(event):
    result = object()
    error = KeyError("x")

    def ok(e, c):
        return result

    def bad(e, c):
        raise error

    assert instrument_handler(ok, tracer_provider=PROVIDER)(event, FakeContext()) is result
    with pytest.raises(KeyError) as caught:
        instrument_handler(bad, tracer_provider=PROVIDER)(event, FakeContext())
    assert caught.value is error
    MEMORY.clear()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=shaped)
def test_any_json_value(event):
    _check(event)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["sqs-batch.json", "api-gateway.json", "sns-batch.json", "eventbridge-custom.json",
                             "kinesis.json", "http-api.json"]),
       path=st.lists(st.sampled_from(["Records", 0, "headers", "requestContext", "messageAttributes", "_datadog",
                                      "detail", "stringValue", "attributes", "kinesis", "data"]), max_size=4),
       value=json_values)
def test_mutated_samples(name, path, value):
    event = sample(name)
    node = event
    for key in path[:-1]:
        try:
            node = node[key]
        except Exception:
            break
    if path:
        try:
            node[path[-1]] = value
        except Exception:
            pass
    _check(event)


@pytest.mark.parametrize("event", [None, 0, -1, 2**200, "x" * 2_000_000, b"\xff" * 1000, [], [None], Weird(),
                                   {"Records": None}, {"Records": [None]}, {"headers": {"x-datadog-trace-id": "9" * 10_000}},
                                   {"requestContext": {"requestTimeEpoch": "nan", "stage": "x"}, "headers": {}}])
def test_odd_events(event):
    _check(event)


def test_odd_contexts():
    class Broken:
        aws_request_id = 5
        invoked_function_arn = ["not", "a", "string"]

        def get_remaining_time_in_millis(self):
            raise RuntimeError("no")

    result = object()
    handler = instrument_handler(lambda e, c: result, tracer_provider=PROVIDER)
    for context in (None, object(), Broken(), FakeContext(arn="arn:aws:lambda"), FakeContext(remaining_ms=-5)):
        assert handler({}, context) is result
