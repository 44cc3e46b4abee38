"""The wrapper through the real DatadogSpanExporter to the real ddapm-test-agent."""

from __future__ import annotations

import uuid

import pytest

from otel_dd_lambda.runtime import cold_start
from otel_dd_lambda.exporters.datadog import DatadogSpanExporter
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.agent import run_test_agent
from tests.wrapper_support import FakeContext, pipeline, sample


@pytest.fixture(scope="module")
def agent():
    with run_test_agent() as running:
        yield running


def test_invocation_reaches_the_agent_as_datadogs_serverless_span(agent, monkeypatch):
    monkeypatch.setenv("DD_COLD_START_TRACING", "false")
    monkeypatch.setenv("DD_TRACE_MANAGED_SERVICES", "false")
    cold_start._reset_for_tests()
    token = "otel-dd-wrapper-%s" % uuid.uuid4().hex
    agent.start_session(token)
    exporter = DatadogSpanExporter(agent.url, mode="agent", headers={"X-Datadog-Test-Session-Token": token})
    provider, _ = pipeline(exporter)
    result = {"statusCode": 200}
    handler = instrument_handler(lambda e, c: result, tracer_provider=provider)
    assert handler(sample("api-gateway.json"), FakeContext()) is result
    # the flush inside the invocation sent it: nothing is left for later
    assert exporter.sent_spans == 1
    traces = agent.wait_for_traces(token, 1)
    (span,) = [s for chunk in traces for s in chunk]
    assert span["name"] == "aws.lambda" and span["type"] == "serverless" and span["resource"] == "My-Func"
    assert span["trace_id"] == 12345 and span["parent_id"] == 67890
    meta = span["meta"]
    assert meta["cold_start"] == "true" and meta["request_id"] == "req-0001"
    assert meta["function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:my-func"
    assert meta["function_trigger.event_source"] == "api-gateway" and meta["http.status_code"] == "200"
    assert meta["_dd.origin"] == "lambda"
    agent.clear(token)
