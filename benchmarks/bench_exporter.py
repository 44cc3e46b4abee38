"""Exporter benchmark: Datadog exporter vs OTLP/HTTP, encoding vs ddtrace, processor memory.

    .venv/bin/python benchmarks/bench_exporter.py

Targets (issue 4): exporting 1,000 spans (100 traces x 10 spans, 10 attributes each) to a loopback
sink <= 0.15x the OTLP/HTTP exporter on the same spans and sink; encoding within 2x ddtrace's
compiled v0.4 encoder; peak memory of 100,000 spans through the processor bounded by its queue.
Medians of alternating blocks of runs (see main); all figures come from this one process.
"""

from __future__ import annotations

import gc
import io
import os
import statistics
import sys
import time
import tracemalloc
from typing import Any, Callable, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import logging  # noqa: E402

from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from otel_dd_lambda.exporters.datadog import DatadogSpanExporter  # noqa: E402
from otel_dd_lambda.exporters.encoding import V04Encoder  # noqa: E402
from otel_dd_lambda.exporters.mapping import SpanMapper  # noqa: E402
from otel_dd_lambda.exporters.processor import LambdaSpanProcessor  # noqa: E402
from tests.support.otlp_sink import OTLPSink  # noqa: E402

TRACES, PER_TRACE, ATTRIBUTES = 100, 10, 10
RESOURCE = Resource.create({"service.name": "bench", "service.version": "1.0", "deployment.environment": "dev"})


def attributes(i: int) -> dict:
    out = {}
    for a in range(ATTRIBUTES):
        out["attr.%d" % a] = ("value-%d-%d" % (i, a)) if a % 2 == 0 else i * a
    return out


def make_spans() -> List[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench", "1.0")
    n = 0
    for _ in range(TRACES):
        with tracer.start_as_current_span("root", attributes=attributes(n)):
            n += 1
            for _ in range(PER_TRACE - 1):
                tracer.start_span("child", attributes=attributes(n)).end()
                n += 1
    provider.shutdown()
    return list(memory.get_finished_spans())


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def ddtrace_spans(spans: List[Any]) -> List[List[Any]]:
    """ddtrace spans equivalent to ours (same ids, names, tags), grouped per trace."""
    from ddtrace.trace import Span

    by_trace: dict = {}
    for s in spans:
        ctx = s.context
        dd = Span(
            "internal", service="bench", resource=s.name, span_type="custom",
            trace_id=ctx.trace_id, span_id=ctx.span_id,
            parent_id=s.parent.span_id if s.parent else None, start=s.start_time / 1e9,
        )
        for k, v in s.attributes.items():
            if isinstance(v, str):
                dd.set_tag(k, v)
            else:
                dd.set_metric(k, v)
        for k, v in RESOURCE.attributes.items():
            if isinstance(v, str):
                dd.set_tag(k, v)
        dd.set_tag("span.kind", "internal")
        dd.set_tag("otel.status_code", "Unset")
        dd.set_tag("otel.scope.name", "bench")
        dd.set_tag("otel.scope.version", "1.0")
        dd.set_tag("env", "dev")
        dd.set_tag("version", "1.0")
        dd.finish(s.end_time / 1e9)
        by_trace.setdefault(ctx.trace_id, []).append(dd)
    return list(by_trace.values())


def main() -> None:
    logging.disable(logging.WARNING)
    spans = make_spans()
    assert len(spans) == TRACES * PER_TRACE
    rows = []

    # ---- export to a loopback sink: Datadog vs OTLP/HTTP
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    with OTLPSink(decode=False) as sink:
        datadog = DatadogSpanExporter(sink.url, mode="agent")
        otlp = OTLPSpanExporter(endpoint=sink.traces_url)
        datadog.export(spans), otlp.export(spans)  # warm up connections and caches
        # Rounds alternate a block of Datadog exports and a block of OTLP exports, so both see
        # the same machine state while neither is charged for the other's garbage and cache
        # eviction; the ratio is the median of the per-round ratios (robust to machine drift).
        dd_times, otlp_times, round_ratios = [], [], []
        for _ in range(9):
            dd_block = [median_ms(lambda: datadog.export(spans), 1) for _ in range(5)]
            otlp_block = [median_ms(lambda: otlp.export(spans), 1) for _ in range(5)]
            dd_times += dd_block
            otlp_times += otlp_block
            round_ratios.append(statistics.median(dd_block) / statistics.median(otlp_block))
        dd_ms, otlp_ms = statistics.median(dd_times), statistics.median(otlp_times)
        pair_ratio = statistics.median(round_ratios)
        assert datadog.stats()["rejected_spans"] == 0 and datadog.buffered_spans == 0
        otlp.shutdown()
        datadog.shutdown()
    rows.append(("export 1,000 spans -> loopback sink", "Datadog exporter", dd_ms, "OTLP/HTTP exporter", otlp_ms,
                 0.15, pair_ratio))

    # ---- encoding: msgpack v0.4 of mapped spans vs ddtrace's compiled encoder
    from ddtrace.internal._encoding import MsgpackEncoderV04

    chunks = SpanMapper().map_chunks(spans)
    encoder = V04Encoder()
    dd_traces = ddtrace_spans(spans)

    def ours_encode() -> None:
        encoder.payloads(chunks, 5 << 20)

    def ddtrace_encode() -> None:
        reference = MsgpackEncoderV04(20 << 20, 20 << 20)
        for t in dd_traces:
            reference.put(t)
        reference.encode()

    mapper = SpanMapper()

    def ours_map_encode() -> None:
        encoder.payloads(mapper.map_chunks(spans), 5 << 20)

    ours_encode(), ddtrace_encode(), ours_map_encode()
    enc_ms = median_ms(ours_encode, 41)
    ref_ms = median_ms(ddtrace_encode, 41)
    map_ms = median_ms(ours_map_encode, 41)
    rows.append(("encode 1,000 spans (v0.4)", "ours (msgpack)", enc_ms, "ddtrace MsgpackEncoderV04", ref_ms, 2.0,
                 None))
    rows.append(("map + encode 1,000 spans", "ours", map_ms, "ddtrace MsgpackEncoderV04", ref_ms, None, None))

    print("%-38s %-20s %9s   %-26s %9s %7s %7s" % ("benchmark", "ours", "ms", "reference", "ms", "ratio",
                                                  "target"))
    # (export ratio: median of the per-round ratios; the others: ratio of medians)
    for name, ours_name, ours_ms, ref_name, ref_value, target, paired in rows:
        ratio = paired if paired is not None else ours_ms / ref_value
        verdict = "" if target is None else ("<= %.2f %s" % (target, "ok" if ratio <= target else "MISSED"))
        print("%-38s %-20s %9.2f   %-26s %9.2f %7.3f  %s" % (name, ours_name, ours_ms, ref_name, ref_value,
                                                           ratio, verdict))

    # ---- memory: 100,000 spans through the Lambda processor
    print()
    for label, queue, flush_every in (("no flush (bound reached)", 512, 0),
                                      ("no flush (bound reached)", 2048, 0),
                                      ("flush every 1,000 spans", 2048, 1000)):
        gc.collect()
        exporter = DatadogSpanExporter(mode="log", out=io.StringIO())
        exporter._out = _Null()
        processor = LambdaSpanProcessor(exporter, background=False, max_queue_size=queue)
        provider = TracerProvider(resource=RESOURCE)
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("bench", "1.0")
        tracemalloc.start()
        for i in range(100_000):
            tracer.start_span("s", attributes=attributes(i)).end()
            if flush_every and i % flush_every == flush_every - 1:
                processor.force_flush(10_000)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print("memory, 100,000 spans, %-26s queue=%d: peak %.1f MiB, dropped %d, exported %d" % (
            label, queue, peak / 2**20, processor.dropped_spans, exporter.sent_spans))
        provider.shutdown()


class _Null(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)


if __name__ == "__main__":
    main()
