"""DatadogSpanExporter against the real ddapm-test-agent: what it received, field by field."""

from __future__ import annotations

import uuid
from typing import Any, Dict, List

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from otel_dd_lambda.exporters.datadog import DatadogSpanExporter
from otel_dd_lambda.exporters.processor import LambdaSpanProcessor
from tests.support.agent import TestAgent

HIGH = 0x6789ABCD00000000
LOW = 0x1122334455667788
TRACE_ID = (HIGH << 64) | LOW


@pytest.fixture
def token(agent: TestAgent):
    value = "otel-dd-%s" % uuid.uuid4().hex
    agent.start_session(value)
    yield value
    agent.clear(value)


def make_exporter(agent: TestAgent, token: str, **kwargs: Any) -> DatadogSpanExporter:
    kwargs.setdefault("agent_url", agent.url)
    return DatadogSpanExporter(
        mode="agent", headers={"X-Datadog-Test-Session-Token": token}, timeout=5.0, **kwargs)


def record(resource: Dict[str, Any], build) -> List[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    build(provider.get_tracer("test.scope", "2.1"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def remote_parent(state: str = "", sampled: bool = True, span_id: int = 0xAAAA) -> Any:
    context = SpanContext(
        TRACE_ID, span_id, is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0),
        trace_state=TraceState([("dd", state)]) if state else TraceState(),
    )
    return trace.set_span_in_context(NonRecordingSpan(context))


def by_name(traces: List[List[Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    return {span["name"] + ":" + span["resource"]: span for chunk in traces for span in chunk}


def test_invocation_trace_field_by_field(agent: TestAgent, token: str) -> None:
    def build(tracer):
        parent = remote_parent("s:2;o:rum;p:00000000000000ab;t.dm:-4;t.usr.id:ba~ba")
        with tracer.start_as_current_span(
            "handler", context=parent, kind=SpanKind.SERVER,
            attributes={
                "faas.invocation_id": "req-123",
                "faas.coldstart": True,
                "faas.trigger": "pubsub",
                "function_trigger.event_source": "sqs",
                "function_trigger.event_source_arn": "arn:aws:sqs:us-east-1:1:q",
            },
        ):
            with tracer.start_as_current_span(
                "GET /items", kind=SpanKind.CLIENT,
                attributes={"http.request.method": "GET", "http.response.status_code": 200,
                            "ratio": 0.5, "flag": False, "tags": ["a", "b"]},
            ) as client:
                client.set_status(Status(StatusCode.ERROR, "upstream failed"))
            with tracer.start_as_current_span(
                "query", kind=SpanKind.CLIENT,
                attributes={"db.system": "postgresql", "db.statement": "SELECT 1"},
            ):
                pass

    spans = record(
        {"service.name": "orders", "service.version": "1.2.3", "deployment.environment.name": "prod",
         "faas.name": "orders-fn", "cloud.resource_id": "arn:aws:lambda:us-east-1:1:function:orders-fn"},
        build,
    )
    exporter = make_exporter(agent, token)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.stats()["rejected_spans"] == 0
    traces = agent.wait_for_traces(token, 3)
    assert len(traces) == 1 and len(traces[0]) == 3
    found = by_name(traces)

    root = found["aws.lambda:orders-fn"]
    assert root["trace_id"] == LOW
    assert root["parent_id"] == 0xAAAA
    assert root["service"] == "orders"
    assert root["type"] == "serverless"
    assert root["error"] == 0
    meta, metrics = root["meta"], root["metrics"]
    assert meta["_dd.origin"] == "lambda"
    assert meta["request_id"] == "req-123"
    assert meta["cold_start"] == "true"
    assert meta["function_arn"] == "arn:aws:lambda:us-east-1:1:function:orders-fn"
    assert meta["function_trigger.event_source"] == "sqs"
    assert meta["function_trigger.event_source_arn"] == "arn:aws:sqs:us-east-1:1:q"
    assert meta["span.kind"] == "server"
    assert meta["otel.status_code"] == "Unset"
    assert meta["otel.scope.name"] == "test.scope"
    assert meta["env"] == "prod"
    assert meta["version"] == "1.2.3"
    assert meta["_dd.p.dm"] == "-4"
    assert meta["_dd.p.usr.id"] == "ba=ba"
    assert meta["_dd.parent_id"] == "00000000000000ab"
    assert meta["otel.trace_id"] == "%032x" % TRACE_ID
    assert "service.name" not in meta  # it is the span's service, not repeated as a tag
    assert meta["faas.name"] == "orders-fn"  # other resource attributes are tags, as the agent does
    assert metrics["_sampling_priority_v1"] == 2
    assert isinstance(root["start"], int) and root["duration"] >= 0

    client = found["http.client.request:GET"]
    assert client["type"] == "http"
    assert client["error"] == 1
    assert client["parent_id"] == root["span_id"]
    assert client["meta"]["error.msg"] == "upstream failed"
    assert client["meta"]["otel.status_code"] == "Error"
    assert client["meta"]["flag"] == "false"
    assert client["meta"]["tags"] == '["a","b"]'
    assert client["meta"]["_dd.origin"] == "rum"  # propagated origin on the rest of the chunk
    assert client["metrics"]["http.response.status_code"] == 200
    assert client["metrics"]["http.status_code"] == 200
    assert client["meta"]["otel.status_description"] == "upstream failed"
    assert client["metrics"]["ratio"] == 0.5
    assert "_sampling_priority_v1" not in client["metrics"]

    db = found["postgresql.query:SELECT 1"]
    assert db["type"] == "sql"

    # _dd.p.tid on the first span of the chunk, exactly once
    assert traces[0][0]["meta"]["_dd.p.tid"] == "%016x" % HIGH
    assert sum("_dd.p.tid" in s["meta"] for s in traces[0]) == 1


def test_headers_as_the_agent_checks_them(agent: TestAgent, token: str) -> None:
    spans = record({"service.name": "svc"}, lambda t: [t.start_span("a").end(), t.start_span("b").end()])
    exporter = make_exporter(agent, token)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.stats()["rejected_spans"] == 0  # a failed header check answers 400
    agent.wait_for_traces(token, 2)
    requests = [r for r in agent.requests(token) if r["url"].endswith("/v0.4/traces")]
    assert len(requests) == 1
    headers = {k.lower(): v for k, v in requests[0]["headers"].items()}
    assert headers["x-datadog-trace-count"] == "2"
    assert headers["datadog-meta-lang"] == "python"
    assert headers["datadog-meta-tracer-version"]
    assert headers["datadog-meta-lang-version"].count(".") == 2
    assert headers["datadog-meta-lang-interpreter"] == "CPython"
    assert headers["datadog-send-real-http-status"] == "1"
    assert headers["content-type"] == "application/msgpack"
    assert "datadog-client-computed-stats" not in headers


def test_links_and_events(agent: TestAgent, token: str) -> None:
    linked = SpanContext((0xABC << 64) | 0xDEF, 0x1234, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED),
                         trace_state=TraceState([("dd", "s:1"), ("vendor", "x")]))

    def build(tracer):
        with tracer.start_as_current_span(
            "batch", links=[Link(linked, {"reason": "terminated_context", "n": 3, "list": [1, 2]})]
        ) as span:
            span.add_event("checkpoint", {"step": 2, "label": "two"})

    spans = record({"service.name": "svc"}, build)
    for native in (False, True):
        exporter = make_exporter(agent, token, native_span_events=native)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert exporter.stats()["rejected_spans"] == 0
    traces = agent.wait_for_traces(token, 2)
    sent = [span for chunk in traces for span in chunk]  # the agent groups them by trace id
    assert len(sent) == 2
    (meta_events,) = [s for s in sent if "span_events" not in s]
    (native_events,) = [s for s in sent if "span_events" in s]
    for span in (meta_events, native_events):
        (link,) = span["span_links"]
        assert link["trace_id"] == 0xDEF
        assert link["trace_id_high"] == 0xABC
        assert link["span_id"] == 0x1234
        assert link["attributes"] == {"reason": "terminated_context", "n": "3", "list.0": "1", "list.1": "2"}
        assert link["tracestate"] == "dd=s:1,vendor=x"
        assert link["flags"] == 1 | (1 << 31)
    import json

    (event,) = json.loads(meta_events["meta"]["events"])
    assert event["name"] == "checkpoint" and event["attributes"] == {"step": 2, "label": "two"}
    assert "span_events" not in meta_events
    (native,) = native_events["span_events"]
    assert native["name"] == "checkpoint"
    assert native["attributes"]["step"] == {"type": 2, "int_value": 2}
    assert native["attributes"]["label"] == {"type": 0, "string_value": "two"}


def test_v05_and_unix_socket(agent: TestAgent, token: str) -> None:
    spans = record({"service.name": "svc"},
                   lambda t: t.start_span("op", attributes={"k": "v", "n": 1.5}).end())
    for url, version in ((agent.url, "v0.5"), (agent.unix_url, "v0.4"), (agent.unix_url, "v0.5")):
        exporter = make_exporter(agent, token, agent_url=url, api_version=version)
        assert exporter.export(spans) is SpanExportResult.SUCCESS, (url, version)
        assert exporter.stats()["rejected_spans"] == 0
    traces = agent.wait_for_traces(token, 3)
    sent = [span for chunk in traces for span in chunk]
    assert len(sent) == 3
    for span in sent:
        assert span["name"] == "internal" and span["resource"] == "op" and span["service"] == "svc"
        assert span["meta"]["k"] == "v" and span["metrics"]["n"] == 1.5
        assert span["meta"]["_dd.p.tid"] == "%016x" % (spans[0].context.trace_id >> 64)
    paths = sorted(r["url"].rsplit("/", 2)[-2] for r in agent.requests(token) if "traces" in r["url"])
    assert paths == ["v0.4", "v0.5", "v0.5"]


def test_many_traces_split_over_payloads(agent: TestAgent, token: str) -> None:
    def build(tracer):
        for i in range(30):
            with tracer.start_as_current_span("root-%d" % i):
                for j in range(5):
                    tracer.start_span("child", attributes={"blob": "x" * 200, "j": j}).end()

    spans = record({"service.name": "svc"}, build)
    exporter = make_exporter(agent, token, max_payload_size=8 * 1024)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.stats() == {"sent_spans": 180, "buffered_spans": 0, "dropped_spans": 0,
                                "rejected_spans": 0, "oversized_spans": 0, "unmappable_spans": 0}
    traces = agent.wait_for_traces(token, 180)
    assert sum(len(t) for t in traces) == 180
    assert len({s["span_id"] for t in traces for s in t}) == 180
    assert len([r for r in agent.requests(token) if r["url"].endswith("/v0.4/traces")]) > 3


def test_processor_flush_in_lambda_mode(agent: TestAgent, token: str, monkeypatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    exporter = make_exporter(agent, token)
    processor = LambdaSpanProcessor(exporter)
    assert not processor.background
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("invocation", attributes={"faas.invocation_id": "r1"}):
        tracer.start_span("inner").end()
    assert processor.queued_spans == 2
    assert provider.force_flush(5000)
    assert processor.queued_spans == 0
    # synchronous: the agent already has them when force_flush returns
    traces = agent.traces(token)
    assert sum(len(t) for t in traces) == 2
    provider.shutdown()
