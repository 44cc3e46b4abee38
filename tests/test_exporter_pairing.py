"""One TracerProvider, two exporters: Datadog (to ddapm-test-agent) and OTLP/HTTP (to a collector).

The same trace must carry the same ids in both: the OTLP 128-bit trace id is the Datadog trace id
(low 64 bits) plus ``_dd.p.tid`` (high 64 bits); span and parent ids are equal.
"""

from __future__ import annotations

import uuid

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from otel_dd_lambda.exporters.datadog import DatadogSpanExporter
from otel_dd_lambda.exporters.processor import LambdaSpanProcessor
from tests.support.otlp_sink import OTLPSink


def test_same_trace_same_ids_in_datadog_and_otlp(agent) -> None:
    token = "pairing-%s" % uuid.uuid4().hex
    agent.start_session(token)
    with OTLPSink() as sink:
        provider = TracerProvider(resource=Resource.create({"service.name": "paired"}))
        datadog = DatadogSpanExporter(agent.url, mode="agent",
                                      headers={"X-Datadog-Test-Session-Token": token})
        provider.add_span_processor(LambdaSpanProcessor(datadog, background=False))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=sink.traces_url)))
        tracer = provider.get_tracer("pairing")
        with tracer.start_as_current_span("invocation", kind=SpanKind.SERVER,
                                          attributes={"faas.invocation_id": "r-1"}):
            with tracer.start_as_current_span("work"):
                tracer.start_span("leaf", kind=SpanKind.CLIENT).end()
        assert provider.force_flush(5000)
        otlp = sink.spans()
        provider.shutdown()

    traces = agent.wait_for_traces(token, 3)
    dd_spans = [span for chunk in traces for span in chunk]
    assert len(otlp) == 3 and len(dd_spans) == 3

    (trace_id,) = {s["trace_id"] for s in otlp}
    assert trace_id >> 64, "the SDK's ids are 128-bit"
    tid = [s["meta"]["_dd.p.tid"] for s in dd_spans if "_dd.p.tid" in s["meta"]]
    assert tid == ["%016x" % (trace_id >> 64)]
    assert {s["trace_id"] for s in dd_spans} == {trace_id & ((1 << 64) - 1)}

    def shape(spans):
        return sorted((s["span_id"], s["parent_id"] or 0) for s in spans)

    assert shape(dd_spans) == shape(otlp)
    names = {s["span_id"]: s["name"] for s in otlp}
    dd_by_id = {s["span_id"]: s for s in dd_spans}
    invocation = [i for i, n in names.items() if n == "invocation"][0]
    assert dd_by_id[invocation]["name"] == "aws.lambda"
    assert dd_by_id[[i for i, n in names.items() if n == "leaf"][0]]["resource"] == "leaf"
    agent.clear(token)
