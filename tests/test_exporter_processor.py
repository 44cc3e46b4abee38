"""LambdaSpanProcessor: bounded collection, synchronous flush, background mode, fork safety."""

from __future__ import annotations

import json
import os
from typing import Any, List, Sequence

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from otel_dd_lambda.exporters.datadog import DatadogSpanExporter
from otel_dd_lambda.exporters.processor import LambdaSpanProcessor
from tests.support.agent import FakeAgent


class Recording(SpanExporter):
    """A plain SDK exporter (no deadline API) that records what it gets and on which thread."""

    def __init__(self) -> None:
        self.batches: List[Sequence[Any]] = []
        self.threads: List[int] = []

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        import threading

        self.batches.append(list(spans))
        self.threads.append(threading.get_ident())
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def provider_with(processor: LambdaSpanProcessor, **kwargs: Any) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}), **kwargs)
    provider.add_span_processor(processor)
    return provider


def test_bounded_queue_drops_and_counts(caplog) -> None:
    exporter = Recording()
    processor = LambdaSpanProcessor(exporter, background=False, max_queue_size=10)
    tracer = provider_with(processor).get_tracer("t")
    for _ in range(25):
        tracer.start_span("s").end()
    assert processor.queued_spans == 10
    assert processor.dropped_spans == 15
    assert sum("queue full" in r.getMessage() for r in caplog.records) == 1  # warned once
    assert processor.force_flush(1000)
    assert [len(b) for b in exporter.batches] == [10]
    tracer.start_span("again").end()
    assert processor.queued_spans == 1


def test_force_flush_exports_on_the_calling_thread() -> None:
    import threading

    exporter = Recording()
    processor = LambdaSpanProcessor(exporter, background=False)
    tracer = provider_with(processor).get_tracer("t")
    tracer.start_span("s").end()
    assert exporter.batches == []  # nothing leaves before the flush
    assert processor.force_flush(1000)
    assert exporter.threads == [threading.get_ident()]
    assert processor.force_flush(1000)  # an empty flush is fine


def test_unsampled_spans_are_not_collected() -> None:
    processor = LambdaSpanProcessor(Recording(), background=False)
    tracer = provider_with(processor, sampler=ALWAYS_OFF).get_tracer("t")
    tracer.start_span("s").end()
    assert processor.queued_spans == 0


def test_lambda_detection_and_background_mode(monkeypatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    assert LambdaSpanProcessor(Recording()).background is False
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    exporter = Recording()
    processor = LambdaSpanProcessor(exporter)
    assert processor.background is True
    tracer = provider_with(processor).get_tracer("t")
    for _ in range(3):
        tracer.start_span("s").end()
    assert processor.force_flush(5000)
    assert sum(len(b) for b in exporter.batches) == 3
    processor.shutdown()


def test_shutdown_flushes_through_the_exporter() -> None:
    with FakeAgent() as agent:
        exporter = DatadogSpanExporter(agent.url, mode="agent")
        processor = LambdaSpanProcessor(exporter, background=False)
        provider = provider_with(processor)
        provider.get_tracer("t").start_span("s").end()
        provider.shutdown()
        assert len(agent.span_ids()) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_uses_a_connection_of_its_own() -> None:
    # the transport does not look at the process id: the exporter's fork hook gives the child a
    # new one, and the parent's keep-alive connection stays the parent's
    with FakeAgent() as agent:
        exporter = DatadogSpanExporter(agent.url, mode="agent")
        processor = LambdaSpanProcessor(exporter, background=False)
        tracer = provider_with(processor).get_tracer("t")
        tracer.start_span("parent-1").end()
        assert processor.force_flush(5000)  # the parent's connection is open when it forks
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                tracer.start_span("child").end()
                code = 0 if processor.force_flush(5000) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        tracer.start_span("parent-2").end()
        assert processor.force_flush(5000)
        ports = {r.traces[0][0]["resource"]: r.client_port for r in agent.requests}
    assert set(ports) == {"parent-1", "child", "parent-2"}
    assert ports["parent-1"] == ports["parent-2"] != ports["child"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_exports_only_its_own_spans() -> None:
    with FakeAgent() as agent:
        exporter = DatadogSpanExporter(agent.url, mode="agent")
        processor = LambdaSpanProcessor(exporter, background=False)
        tracer = provider_with(processor).get_tracer("t")
        tracer.start_span("parent-before-fork").end()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: report what it saw, export its own span, exit without cleanup
            code = 1
            try:
                queued = processor.queued_spans
                tracer.start_span("child-span").end()
                ok = processor.force_flush(5000)
                os.write(write_end, json.dumps({"queued": queued, "ok": ok}).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            report = json.loads(pipe.read() or "{}")
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert report == {"queued": 0, "ok": True}
        child_spans = agent.spans()
        assert [s["resource"] for s in child_spans] == ["child-span"]
        assert processor.force_flush(5000)
        assert sorted(s["resource"] for s in agent.spans()) == ["child-span", "parent-before-fork"]


def test_queue_size_from_the_environment(monkeypatch) -> None:
    # OTEL_BSP_MAX_QUEUE_SIZE, read through config.ExporterSettings; junk and <= 0 give 2048
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    for value, expected in (("7", 7), (" 12 ", 12), ("0", 2048), ("-3", 2048), ("many", 2048)):
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", value)
        assert LambdaSpanProcessor(Recording()).max_queue_size == expected
    monkeypatch.delenv("OTEL_BSP_MAX_QUEUE_SIZE")
    assert LambdaSpanProcessor(Recording(), max_queue_size=3).max_queue_size == 3
