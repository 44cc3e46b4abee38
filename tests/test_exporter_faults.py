"""Failure behaviour of DatadogSpanExporter against a scriptable local agent."""

from __future__ import annotations

import logging

import pytest
import threading
from typing import Any, List

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_dd_lambda.exporters.datadog import DatadogSpanExporter
from otel_dd_lambda.exporters.processor import LambdaSpanProcessor
from tests.support.agent import BLOCK, GARBAGE_STATUS, RESET, FakeAgent, free_port


def make_spans(traces: int = 3, per_trace: int = 3, blob: int = 0) -> List[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    for i in range(traces):
        with tracer.start_as_current_span("root-%d" % i):
            for _ in range(per_trace - 1):
                tracer.start_span("child", attributes={"blob": "x" * blob} if blob else None).end()
    provider.shutdown()
    return list(memory.get_finished_spans())


def exporter_for(url: str, **kwargs: Any) -> DatadogSpanExporter:
    kwargs.setdefault("backoff", 0.01)
    kwargs.setdefault("timeout", 5.0)
    return DatadogSpanExporter(url, mode="agent", **kwargs)


def ids(spans: List[Any]) -> List[int]:
    return sorted(s.context.span_id for s in spans)


def test_agent_down_then_up_keeps_spans_within_bound() -> None:
    port = free_port()  # nothing listens there yet: connections are refused
    exporter = exporter_for("http://127.0.0.1:%d" % port, max_buffered_spans=20, max_attempts=2)
    first, second = make_spans(3, 3), make_spans(2, 3)
    assert exporter.export(first) is SpanExportResult.FAILURE
    assert exporter.export(second) is SpanExportResult.FAILURE
    assert exporter.buffered_spans == 15
    assert exporter.force_flush(200) is False

    overflow = make_spans(3, 3)  # 24 > 20: the oldest chunks (from ``first``) go first
    assert exporter.export(overflow) is SpanExportResult.FAILURE
    assert exporter.buffered_spans <= 20
    assert exporter.dropped_spans == 24 - exporter.buffered_spans

    with FakeAgent(port=port) as agent:
        assert exporter.force_flush(5000) is True
        received = agent.span_ids()
    assert exporter.buffered_spans == 0
    assert len(received) == len(set(received)) == 24 - exporter.dropped_spans
    assert set(ids(second + overflow)) <= set(received)  # newest kept


def test_slow_agent_flush_returns_within_deadline() -> None:
    with FakeAgent(lambda request: BLOCK) as agent:
        exporter = exporter_for(agent.url)
        spans = make_spans(1, 2)
        result = exporter.export_until(spans, deadline=__import__("time").monotonic() + 0.3)
        # the call came back while the agent was still holding the request
        assert agent.blocked.is_set() and not agent.release.is_set()
        assert result is SpanExportResult.FAILURE
        assert exporter.buffered_spans == 2  # kept for the next flush
        agent.release.set()


def test_400_drops_payload_with_one_error_log(caplog) -> None:
    with FakeAgent(lambda request: (400, b"bad payload")) as agent:
        exporter = exporter_for(agent.url)
        with caplog.at_level(logging.ERROR, logger="otel_dd_lambda.exporters.datadog"):
            assert exporter.export(make_spans(2, 2)) is SpanExportResult.SUCCESS
        assert len(agent.requests) == 1  # not retried
        assert exporter.rejected_spans == 4 and exporter.buffered_spans == 0
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "400" in errors[0].getMessage()


def test_413_splits_and_resends() -> None:
    spans = make_spans(8, 4, blob=300)
    with FakeAgent(max_body=3000) as agent:
        exporter = exporter_for(agent.url)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        received = agent.span_ids()
        assert any(r.body and len(r.body) > 3000 for r in agent.requests)  # it did get a 413
        assert all(len(r.body) <= 3000 for r in agent.accepted)
    assert sorted(received) == ids(spans)
    # a chunk split over payloads keeps _dd.p.tid on the first span of each piece
    by_trace = {}
    for r in agent.accepted:
        for chunk in r.traces:
            assert "_dd.p.tid" in chunk[0]["meta"]
            by_trace.setdefault(chunk[0]["trace_id"], 0)
            by_trace[chunk[0]["trace_id"]] += len(chunk)
    assert sorted(by_trace.values()) == [4] * 8


def test_lone_span_too_large_for_413_is_dropped() -> None:
    with FakeAgent(max_body=100) as agent:
        exporter = exporter_for(agent.url)
        assert exporter.export(make_spans(1, 1)) is SpanExportResult.SUCCESS
        assert exporter.rejected_spans == 1 and agent.accepted == []


def test_max_payload_size_keeps_bodies_small() -> None:
    spans = make_spans(10, 5, blob=500)
    with FakeAgent() as agent:
        exporter = exporter_for(agent.url, max_payload_size=4096)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert all(len(r.body) <= 4096 for r in agent.requests)
        assert sorted(agent.span_ids()) == ids(spans)
        for r in agent.accepted:
            assert r.headers["X-Datadog-Trace-Count"] == str(len(r.traces))


def test_retryable_statuses_then_success() -> None:
    for status in (429, 500, 503, 408):
        script = lambda request, status=status: status if request.number < 2 else 200  # noqa: E731
        with FakeAgent(script) as agent:
            exporter = exporter_for(agent.url)
            spans = make_spans(2, 2)
            assert exporter.export(spans) is SpanExportResult.SUCCESS, status
            assert len(agent.requests) == 3
            assert sorted(agent.span_ids()) == ids(spans)


def test_retries_exhausted_keeps_spans_for_next_flush() -> None:
    state = {"fail": True}
    with FakeAgent(lambda request: 503 if state["fail"] else 200) as agent:
        exporter = exporter_for(agent.url, max_attempts=3)
        spans = make_spans(2, 2)
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert len(agent.requests) == 3 and exporter.buffered_spans == 4
        state["fail"] = False
        assert exporter.force_flush(2000) is True
        assert sorted(agent.span_ids()) == ids(spans)


def test_unavailable_agent_costs_later_flushes_one_attempt() -> None:
    # Once a flush gives up, the next ones try once (no backoff sleeps) until the agent answers;
    # an answer, even an error status, restores the full retry schedule.
    state = {"status": 503}
    with FakeAgent(lambda request: state["status"]) as agent:
        exporter = exporter_for(agent.url, max_attempts=3)
        assert exporter.export(make_spans(1, 2)) is SpanExportResult.FAILURE
        assert len(agent.requests) == 3
        assert exporter.export(make_spans(1, 2)) is SpanExportResult.FAILURE
        assert len(agent.requests) == 4  # one attempt, not three
        assert exporter.buffered_spans == 4
        state["status"] = 200
        assert exporter.force_flush(2000) is True
        assert len(agent.span_ids()) == 4
        state["status"] = 503
        assert exporter.export(make_spans(1, 2)) is SpanExportResult.FAILURE
        assert len(agent.requests) == 5 + 3  # recovered: the full schedule again


def test_connection_reset_mid_body_is_retried() -> None:
    with FakeAgent(lambda request: RESET if request.number < 2 else 200) as agent:
        exporter = exporter_for(agent.url)
        spans = make_spans(3, 3, blob=2000)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        received = agent.span_ids()
        assert len(agent.requests) == 3
    assert sorted(received) == ids(spans)  # delivered once


def test_garbage_responses() -> None:
    # a 200 whose body is not JSON is still a delivery
    with FakeAgent(lambda request: (200, b"\x00\xff{not json")) as agent:
        exporter = exporter_for(agent.url)
        assert exporter.export(make_spans(1, 2)) is SpanExportResult.SUCCESS
        assert exporter.rate_by_service == {}
    # a response that is not HTTP at all is a transport failure: retried
    with FakeAgent(lambda request: GARBAGE_STATUS if request.number == 0 else 200) as agent:
        exporter = exporter_for(agent.url)
        spans = make_spans(1, 2)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert sorted(agent.span_ids()) == ids(spans)
    # rate_by_service is read when present
    with FakeAgent(lambda request: (200, b'{"rate_by_service":{"service:svc,env:":0.5}}')) as agent:
        exporter = exporter_for(agent.url)
        exporter.export(make_spans(1, 1))
        assert exporter.rate_by_service == {"service:svc,env:": 0.5}


def test_rate_by_service_follows_every_new_response_body(monkeypatch: Any) -> None:
    # a body identical to the previous one is not parsed again; any other body is
    from otel_dd_lambda.exporters import datadog

    half, quarter = (b'{"rate_by_service":{"service:svc,env:":%s}}' % rate for rate in (b"0.5", b"0.25"))
    bodies = [half, half, quarter, b"not json", half, half]
    expected = [0.5, 0.5, 0.25, 0.25, 0.5, 0.5]  # an unreadable body keeps the last rates
    parsed: List[bytes] = []
    real = datadog.parse_response_rates
    monkeypatch.setattr(datadog, "parse_response_rates", lambda body: parsed.append(body) or real(body))
    with FakeAgent(lambda request: (200, bodies[request.number])) as agent:
        exporter = exporter_for(agent.url)
        for rate in expected:
            assert exporter.export(make_spans(1, 1)) is SpanExportResult.SUCCESS
            assert exporter.rate_by_service == {"service:svc,env:": rate}
    assert parsed == [half, quarter, b"not json", half]


def test_keep_alive_reuses_one_connection() -> None:
    ports = set()

    def script(request):
        return 200

    with FakeAgent(script) as agent:
        exporter = exporter_for(agent.url)
        for _ in range(3):
            assert exporter.export(make_spans(1, 1)) is SpanExportResult.SUCCESS
            ports.add(exporter._transport._conn.sock.getsockname()[1])
    assert len(ports) == 1


def test_many_threads_no_loss_no_duplicates() -> None:
    with FakeAgent() as agent:
        exporter = exporter_for(agent.url)
        processor = LambdaSpanProcessor(exporter, background=False, max_queue_size=100_000)
        provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("t")
        start = threading.Barrier(8)
        created: List[List[int]] = [[] for _ in range(8)]

        def work(n: int) -> None:
            start.wait(10)
            for i in range(150):
                with tracer.start_as_current_span("op") as span:
                    created[n].append(span.get_span_context().span_id)
                if i % 50 == 49:
                    processor.force_flush(5000)  # flushes racing with span ends

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert processor.force_flush(5000)
        received = agent.span_ids()
        provider.shutdown()
    expected = sorted(i for ids_ in created for i in ids_)
    assert len(expected) == 1200
    assert sorted(received) == expected


@pytest.mark.internal_error_expected  # a non-span handed to export() is logged with its traceback
def test_exporter_never_raises_on_bad_input() -> None:
    with FakeAgent() as agent:
        exporter = exporter_for(agent.url)
        assert exporter.export([object(), None]) is SpanExportResult.SUCCESS  # mapped to nothing
        assert exporter._mapper.unmappable == 2
        assert exporter.export([]) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert exporter.export(make_spans(1, 1)) is SpanExportResult.FAILURE
        assert exporter.force_flush(10) is True
    bad = DatadogSpanExporter("not a url", mode="agent")
    assert bad.endpoint.url == "http://127.0.0.1:8126"


def test_header_and_body_leave_in_one_send_with_nodelay() -> None:
    import socket

    class CountingSocket:
        def __init__(self, sock: socket.socket) -> None:
            self._sock = sock
            self.sends: List[int] = []

        def sendall(self, data: bytes) -> None:
            self.sends.append(len(data))
            self._sock.sendall(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._sock, name)

    with FakeAgent() as agent:
        exporter = exporter_for(agent.url)
        assert exporter.export(make_spans(1, 1)) is SpanExportResult.SUCCESS  # opens the connection
        conn = exporter._transport._conn
        assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        counting = CountingSocket(conn.sock)
        conn.sock = counting
        assert exporter.export(make_spans(2, 3)) is SpanExportResult.SUCCESS
        body_size = len(agent.accepted[-1].body)
    assert len(counting.sends) == 1 and counting.sends[0] > body_size
