"""The wrapper through the real DatadogSpanExporter to the real ddapm-test-agent."""

from __future__ import annotations

import json
import uuid

from otel_dd_lambda.exporters.datadog import DatadogSpanExporter
from otel_dd_lambda.runtime import cold_start
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.wrapper import FakeContext, pipeline, sample


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


# ---------------------------------------------------------------- payload capture


def _api_call(agent, monkeypatch, result, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DD_COLD_START_TRACING", "false")
    monkeypatch.setenv("DD_TRACE_MANAGED_SERVICES", "false")
    cold_start._reset_for_tests()
    token = "otel-dd-payload-%s" % uuid.uuid4().hex
    agent.start_session(token)
    exporter = DatadogSpanExporter(agent.url, mode="agent", headers={"X-Datadog-Test-Session-Token": token})
    provider, _ = pipeline(exporter)
    event = sample("api-gateway.json")
    event["headers"]["Authorization"] = "Bearer secret-credential"
    event["body"] = '{"user": {"name": "ann", "password": "hunter2"}, "items": [1, 2]}'
    handler = instrument_handler(lambda e, c: result, tracer_provider=provider)
    assert handler(event, FakeContext()) is result
    (span,) = [s for chunk in agent.wait_for_traces(token, 1) for s in chunk]
    agent.clear(token)
    return span["meta"]


def test_payload_capture_reaches_the_agent_flattened_and_redacted(agent, monkeypatch):
    result = {"statusCode": 201, "headers": {"X-Authorization": "k"},
              "body": '{"ok": true, "token": "123", "ids": [7, null]}'}
    meta = _api_call(agent, monkeypatch, result, DD_CAPTURE_LAMBDA_PAYLOAD="true")
    assert meta["function.request.httpMethod"] == "POST"
    assert meta["function.request.headers.Host"] == "1234567890.execute-api.us-east-1.amazonaws.com"
    assert meta["function.request.requestContext.stage"] == "prod"
    assert meta["function.request.body.user.name"] == "ann"
    assert meta["function.request.body.items.1"] == "2"
    assert meta["function.response.statusCode"] == "201"
    assert meta["function.response.body.ok"] == "True" and meta["function.response.body.ids.1"] == "None"
    # sensitive keys, at any depth and inside JSON bodies, never in clear
    for key in ("function.request.headers.Authorization", "function.request.body.user.password",
                "function.response.headers.X-Authorization", "function.response.body.token"):
        assert meta[key] == "redacted"
    flat = json.dumps(meta)
    assert "secret-credential" not in flat and "hunter2" not in flat
    # the span's own tags are all there beside them
    assert meta["request_id"] == "req-0001" and meta["http.status_code"] == "201"
    assert meta["function_trigger.event_source"] == "api-gateway"


def test_payload_capture_is_off_by_default(agent, monkeypatch):
    monkeypatch.delenv("DD_CAPTURE_LAMBDA_PAYLOAD", raising=False)
    meta = _api_call(agent, monkeypatch, {"statusCode": 200, "body": "{}"})
    assert meta["request_id"] == "req-0001"
    assert not [key for key in meta if key.startswith(("function.request", "function.response"))]
    meta = _api_call(agent, monkeypatch, {"statusCode": 200}, DD_CAPTURE_LAMBDA_PAYLOAD="false")
    assert not [key for key in meta if key.startswith(("function.request", "function.response"))]
