"""Hostile events through the wrapper never change the handler's result or exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_dd_lambda.runtime import cold_start
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.hostile import (
    NAMED_CONTEXTS,
    AllRaise,
    RaisingInt,
    Weird,
    hostile_contexts,
    with_arn,
    with_remaining,
)
from tests.support.wrapper import FakeContext, pipeline, sample

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
                                   {"Records": None}, {"Records": [None]},
                                   {"headers": {"x-datadog-trace-id": "9" * 10_000}},
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


def _invocation_spans():
    return [s for s in MEMORY.get_finished_spans() if "faas.invocation_id" in (s.attributes or {})]


def _check_context(context, event=None):
    """The handler's result and exception are unchanged and each invocation's span reaches the
    exporter: in the invocation's flush, or (no time left by the context's own account) in the next."""
    event = {} if event is None else event
    result, error = object(), KeyError("x")

    def ok(e, c):
        assert c is context  # the handler gets the very object
        return result

    def bad(e, c):
        raise error

    for handler, expect_error in ((ok, False), (bad, True)):
        PROVIDER.force_flush(5000)  # what an earlier test left waiting
        MEMORY.clear()
        wrapped = instrument_handler(handler, tracer_provider=PROVIDER)
        if expect_error:
            with pytest.raises(KeyError) as caught:
                wrapped(event, context)
            assert caught.value is error
        else:
            assert wrapped(event, context) is result
        timeout = wrapped.instrumentation.last_flush_timeout_ms
        assert timeout is not None and timeout <= 900_000
        if timeout <= 0:
            assert PROVIDER.force_flush(5000)  # the spans waited in the processor, not lost
        spans = _invocation_spans()
        assert len(spans) == 1, [s.name for s in MEMORY.get_finished_spans()]
        assert (spans[0].status.status_code.name == "ERROR") is expect_error
    MEMORY.clear()


@pytest.mark.parametrize("name", sorted(NAMED_CONTEXTS))
def test_hostile_context_keeps_result_and_span(name):
    _check_context(NAMED_CONTEXTS[name], sample("sqs-batch.json"))


def test_hostile_context_tags_what_it_can():
    (span,) = _run_one(AllRaise())
    assert span.attributes["request_id"] == "unknown" and "function_arn" not in span.attributes
    (span,) = _run_one(with_arn(7))
    assert span.attributes["request_id"] == "req-0001" and "function_arn" not in span.attributes


def _run_one(context):
    PROVIDER.force_flush(5000)
    MEMORY.clear()
    instrument_handler(lambda e, c: 1, tracer_provider=PROVIDER)({}, context)
    spans = _invocation_spans()
    MEMORY.clear()
    return spans


def test_garbage_remaining_time_flushes_with_the_default_and_huge_is_capped():
    handler = instrument_handler(lambda e, c: 1, tracer_provider=PROVIDER)
    for value in (float("nan"), "12abc", None, RaisingInt()):
        handler({}, with_remaining(value))
        assert handler.instrumentation.last_flush_timeout_ms == 5000
    handler({}, with_remaining(2**200))
    assert handler.instrumentation.last_flush_timeout_ms == 900_000 - 50
    handler({}, with_remaining("1000"))  # a number as text is not a number: the default
    assert handler.instrumentation.last_flush_timeout_ms == 5000
    handler({}, with_remaining(1000.7))
    assert handler.instrumentation.last_flush_timeout_ms == 950
    MEMORY.clear()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(context=hostile_contexts(), event=st.sampled_from(["api-gateway.json", "sqs-batch.json", "kinesis.json", None]))
def test_any_hostile_context(context, event):
    _check_context(context, sample(event) if event else {})


REDIRECT_SCRIPT = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from tests.support.hostile import NAMED_CONTEXTS
from otel_dd_lambda.handler import handler
for name in sorted(NAMED_CONTEXTS):
    for event in ({"ok": name}, {"fail": name}):
        try:
            outcome = ["returned", handler(event, NAMED_CONTEXTS[name])]
        except ValueError as error:
            outcome = ["raised", str(error)]
        print("RESULT " + json.dumps([name, outcome]), flush=True)
'''


def test_hostile_contexts_through_the_handler_redirect(tmp_path):
    """The no-code-change handler in a fresh interpreter, exporting with the real Datadog exporter
    in log mode: every call's own result or exception, and one aws.lambda span per call."""
    import json
    import os
    import subprocess
    import sys

    (tmp_path / "user_app.py").write_text(
        "def handler(event, context):\n"
        "    if 'fail' in event:\n"
        "        raise ValueError('boom ' + event['fail'])\n"
        "    return {'echo': event['ok']}\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    env.update({"AWS_LAMBDA_FUNCTION_NAME": "my-fn", "AWS_REGION": "eu-west-1", "OTEL_DD_LAMBDA_EXPORT_MODE": "log",
                "DD_LAMBDA_HANDLER": "user_app.handler", "DD_COLD_START_TRACING": "false",
                "PYTHONPATH": os.pathsep.join([str(tmp_path), root])})
    proc = subprocess.run([sys.executable, "-c", REDIRECT_SCRIPT, root], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 2 * len(NAMED_CONTEXTS)
    for name, outcome in results:
        assert outcome in (["returned", {"echo": name}], ["raised", "boom " + name]), (name, outcome)
    spans = [span for line in proc.stdout.splitlines() if line.startswith('{"traces"')
             for chunk in json.loads(line)["traces"] for span in chunk if span["name"] == "aws.lambda"]
    # the contexts whose remaining time is negative leave their spans for the next call's flush;
    # the last context in sorted order is not one of them, so every span is out by the end
    assert len(spans) == 2 * len(NAMED_CONTEXTS)
    assert sum(span["error"] for span in spans) == len(NAMED_CONTEXTS)


class _ProviderFailingFirst:
    """A real provider whose first ``get_tracer`` fails (setup at decoration time then waits)."""

    def __init__(self, failures: int) -> None:
        self.provider, self.memory = pipeline()
        self.failures = failures

    def get_tracer(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("not ready")
        return self.provider.get_tracer(*args, **kwargs)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.provider.force_flush(timeout_millis)


@pytest.mark.internal_error_expected
def test_setup_failing_at_decoration_is_retried_by_the_first_invocation():
    provider = _ProviderFailingFirst(failures=1)
    handler = instrument_handler(lambda e, c: "result", tracer_provider=provider)
    assert handler.instrumentation.tracer is None
    assert handler({}, FakeContext()) == "result"
    assert [s.name for s in provider.memory.get_finished_spans()] == ["My-Func"]


@pytest.mark.internal_error_expected
def test_setup_failing_every_time_leaves_the_handler_untraced():
    provider = _ProviderFailingFirst(failures=10)
    handler = instrument_handler(lambda e, c: "result", tracer_provider=provider)
    assert handler({}, FakeContext()) == "result" and handler({}, FakeContext()) == "result"
    assert provider.memory.get_finished_spans() == ()
