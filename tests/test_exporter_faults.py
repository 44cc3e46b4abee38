"""Failure behaviour of DatadogSpanExporter against a scriptable local agent."""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from typing import Any, List

import msgpack
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_dd_lambda.exporters.datadog import DatadogSpanExporter
from otel_dd_lambda.exporters.encoding import V04Encoder
from otel_dd_lambda.exporters.processor import LambdaSpanProcessor
from tests.support.agent import BLOCK, GARBAGE_STATUS, RESET, FakeAgent, free_port
from tests.support.raw_server import RawServer


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


class ClientSocket:
    """A socket the exporter opened, seen from outside: its sends (``send`` or ``sendall``) are counted."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends: List[int] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(len(data))
        self.sock.sendall(data)

    def send(self, data: bytes, flags: int = 0) -> int:
        self.sends.append(len(data))
        return self.sock.send(data, flags)

    @property
    def is_open(self) -> bool:
        return self.sock.fileno() != -1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@pytest.fixture
def client_sockets(monkeypatch: Any) -> List[ClientSocket]:
    """Every TCP connection opened during the test (``socket.create_connection``), in order."""
    opened: List[ClientSocket] = []
    connect = socket.create_connection

    def create_connection(*args: Any, **kwargs: Any) -> ClientSocket:
        opened.append(ClientSocket(connect(*args, **kwargs)))
        return opened[-1]

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return opened


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
    def script(request):
        return 200

    with FakeAgent(script) as agent:
        exporter = exporter_for(agent.url)
        for _ in range(3):
            assert exporter.export(make_spans(1, 1)) is SpanExportResult.SUCCESS
        ports = {request.client_port for request in agent.requests}
    assert len(agent.requests) == 3 and len(ports) == 1


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
        assert exporter.stats()["unmappable_spans"] == 2
        assert exporter.export([]) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert exporter.export(make_spans(1, 1)) is SpanExportResult.FAILURE
        assert exporter.force_flush(10) is True
    bad = DatadogSpanExporter("not a url", mode="agent")
    assert bad.endpoint.url == "http://127.0.0.1:8126"


def test_header_and_body_leave_in_one_send_with_nodelay(client_sockets: List[ClientSocket]) -> None:
    with FakeAgent() as agent:
        exporter = exporter_for(agent.url)
        assert exporter.export(make_spans(1, 1)) is SpanExportResult.SUCCESS  # opens the connection
        (connection,) = client_sockets
        assert connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        connection.sends.clear()
        assert exporter.export(make_spans(2, 3)) is SpanExportResult.SUCCESS
        body_size = len(agent.accepted[-1].body)
    assert len(client_sockets) == 1  # the same connection
    assert len(connection.sends) == 1 and connection.sends[0] > body_size


# ---------------------------------------------------------------- hostile agents (issue 9)
#
# A raw-socket server on 127.0.0.1 whose behaviour can change while it runs: it reads each
# request in full, then misbehaves as told, or answers 200 and records the spans ("ok"). Every
# test checks the flush comes back within its deadline (+0.5 s), keeps the spans, does not wait
# on the same agent again on the next flush, and delivers everything once the agent is healthy.

SLACK = 0.5
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{\"rate_by_service\":{}}"


class HostileAgent(RawServer):
    """Threaded raw-socket HTTP server; ``behaviour`` is read for every request."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.lock = threading.Lock()
        self.accepted: List[List[int]] = []  # span ids of each request answered 200 in full
        self.requests = 0
        super().__init__()
        self.url = "http://127.0.0.1:%d" % self.port

    def span_ids(self) -> List[int]:
        with self.lock:
            return [i for ids_ in self.accepted for i in ids_]

    def _read_request(self, conn: socket.socket) -> Any:
        started = self.read_head(conn)
        if started is None:
            return None
        length, body = started
        while len(body) < length:
            data = conn.recv(65536)
            if not data:
                return None
            body += data
        return body

    def _serve(self, conn: socket.socket, client_port: int) -> None:
        conn.settimeout(0.05)
        try:
            while not self.stopped.is_set():
                try:
                    body = self._read_request(conn)
                except socket.timeout:
                    continue
                if body is None:
                    return
                conn.settimeout(5)
                with self.lock:
                    self.requests += 1
                if not self._answer(conn, body):
                    return
                conn.settimeout(0.05)
        except OSError:
            pass
        finally:
            conn.close()

    def _until_changed(self, behaviour: str, step: float) -> bool:
        """Wait ``step``; False as soon as the behaviour changed or the server stops."""
        end = time.monotonic() + step
        while True:
            if self.behaviour != behaviour or self.stopped.is_set():
                return False
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(0.02, left))

    @staticmethod
    def _client_gone(conn: socket.socket) -> bool:
        conn.settimeout(0.0)  # a timeout would make recv wait for data first
        try:
            return conn.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            conn.settimeout(5)

    def _answer(self, conn: socket.socket, body: bytes) -> bool:
        behaviour = self.behaviour
        if behaviour == "blackhole":  # never answers, until told to behave
            while self._until_changed(behaviour, 0.02):
                pass
            if self.stopped.is_set() or self._client_gone(conn):
                return False  # the client gave up on this request: answering it counts nothing
            behaviour = self.behaviour
        if behaviour == "slow":  # answers, but only after 3 s
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and self._until_changed(behaviour, 0.02):
                pass
            behaviour = "ok"
        if behaviour == "ok":
            ids_ = [span["span_id"] for chunk in msgpack.unpackb(body) for span in chunk]
            with self.lock:  # recorded before the client can see the answer
                self.accepted.append(ids_)
            conn.sendall(_OK)
            return True
        if behaviour == "drip":  # a correct answer, one byte every 0.5 s
            for byte in _OK:
                conn.sendall(bytes((byte,)))
                if not self._until_changed(behaviour, 0.5):
                    return False
            return False
        if behaviour == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        heads = {
            "endless": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n",
            "huge-length": b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n",
            "huge-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2540BE400\r\n",
        }
        conn.sendall(heads[behaviour])
        block = b"x" * 65536
        end = time.monotonic() + 30
        while self.behaviour == behaviour and time.monotonic() < end and not self.stopped.is_set():
            conn.sendall(block)  # as fast as the client reads; a closed client ends it
        return False


def timed(fn: Any, *args: Any) -> Any:
    start = time.monotonic()
    result = fn(*args)
    return result, time.monotonic() - start


HUNG = ["drip", "blackhole", "slow"]


@pytest.mark.parametrize("behaviour", HUNG)
def test_hung_agent_bounded_then_probed_then_delivered(behaviour: str) -> None:
    budget = 1.0
    first, second = make_spans(2, 3), make_spans(1, 2)
    with HostileAgent(behaviour) as agent:
        exporter = exporter_for(agent.url, timeout=30.0)
        result, took = timed(exporter.export_until, first, time.monotonic() + budget)
        assert result is SpanExportResult.FAILURE
        assert took <= budget + SLACK
        assert exporter.buffered_spans == 6 and exporter.agent_hung
        # the next invocation does not wait the whole deadline on the same agent again
        result, took = timed(exporter.export_until, second, time.monotonic() + budget)
        assert result is SpanExportResult.FAILURE
        assert took < budget / 2
        assert exporter.buffered_spans == 8 and exporter.dropped_spans == 0
        requests = agent.requests
        result, took = timed(exporter.export_until, [], time.monotonic() + budget)
        assert result is SpanExportResult.FAILURE and took < budget / 2
        assert agent.requests == requests  # the probe outstanding is looked at, not repeated
        agent.behaviour = "ok"
        time.sleep(0.2)
        assert exporter.force_flush(int(budget * 1000)) is True
        assert exporter.buffered_spans == 0 and not exporter.agent_hung
        received = agent.span_ids()
    if behaviour == "slow":  # it took the first request in the end: may hold it twice
        assert set(received) == set(ids(first + second))
    else:
        assert sorted(received) == ids(first + second)


@pytest.mark.parametrize("behaviour", ["endless", "huge-length", "huge-chunk"])
def test_endless_response_bodies_are_cut_short(behaviour: str, client_sockets: List[ClientSocket]) -> None:
    # the status line says 200: the spans are delivered; the body is read up to 64 KiB, no more
    budget = 2.0
    spans = make_spans(2, 2)
    with HostileAgent(behaviour) as agent:
        exporter = exporter_for(agent.url, timeout=30.0)
        exporter.export_until(make_spans(1, 1), time.monotonic() + budget)  # warm up imports
        gc.collect()
        tracemalloc.start()
        try:
            result, took = timed(exporter.export_until, spans, time.monotonic() + budget)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result is SpanExportResult.SUCCESS
        assert took <= budget + SLACK
        assert peak < 4 * 1024 * 1024  # not the 154 MB of a body read to its end
        assert exporter.buffered_spans == 0 and not exporter.agent_hung
        assert not any(sock.is_open for sock in client_sockets)  # the rest of the body went with the socket
        _, took = timed(exporter.export_until, make_spans(1, 1), time.monotonic() + budget)
        assert took <= budget + SLACK


def test_connection_reset_keeps_spans_until_agent_answers() -> None:
    spans = make_spans(2, 2)
    with HostileAgent("reset") as agent:
        exporter = exporter_for(agent.url)
        result, took = timed(exporter.export_until, spans, time.monotonic() + 1.0)
        assert result is SpanExportResult.FAILURE and took <= 1.0 + SLACK
        assert exporter.buffered_spans == 4 and not exporter.agent_hung
        agent.behaviour = "ok"
        assert exporter.force_flush(1000) is True
        assert sorted(agent.span_ids()) == ids(spans)


def test_flush_cap_from_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("OTEL_DD_LAMBDA_FLUSH_TIMEOUT_MS", "300")
    with HostileAgent("blackhole") as agent:
        exporter = DatadogSpanExporter(agent.url, mode="agent")
        assert exporter.timeout == 0.3
        # the caller allows 30 s; the cap allows 0.3 s
        result, took = timed(exporter.force_flush, 30_000)
        assert result is True  # nothing to send: no request at all
        result, took = timed(exporter.export_until, make_spans(1, 1), time.monotonic() + 30)
        assert result is SpanExportResult.FAILURE and took <= 0.3 + SLACK
    monkeypatch.setenv("OTEL_DD_LAMBDA_FLUSH_TIMEOUT_MS", "junk")
    assert DatadogSpanExporter("http://127.0.0.1:1", mode="agent").timeout == 1.0


def test_agent_down_costs_one_attempt_without_sleeping(monkeypatch: Any) -> None:
    # refused connections: no backoff sleep on the invocation's path, bytes encoded once
    port = free_port()
    exporter = exporter_for("http://127.0.0.1:%d" % port, backoff=5.0, max_attempts=4)
    encoded: List[int] = []
    real = V04Encoder.payloads
    monkeypatch.setattr(V04Encoder, "payloads",
                        lambda self, chunks, size: encoded.append(len(chunks)) or real(self, chunks, size))
    batches = [make_spans(1, 2) for _ in range(5)]
    for batch in batches:
        result, took = timed(exporter.export_until, batch, time.monotonic() + 10)
        assert result is SpanExportResult.FAILURE and took < 1.0  # a 5 s backoff never slept
    assert encoded == [1] * 5  # each flush encoded its own spans, never the buffer again
    assert exporter.buffered_spans == 10
    with FakeAgent(port=port) as agent:
        assert exporter.force_flush(2000) is True
        assert len(agent.requests) == 1  # the kept payloads joined in one body, not re-encoded
        assert agent.requests[0].headers["X-Datadog-Trace-Count"] == "5"
        assert sorted(agent.span_ids()) == ids([s for b in batches for s in b])
    assert encoded == [1] * 5


HOSTILE_TIMEOUTS = [float("inf"), 10 ** 30, 10 ** 400, float("nan"), -1, -float("inf"), 0, 1e308, "x", None]


def test_force_flush_accepts_any_timeout_and_loses_nothing() -> None:
    with FakeAgent() as agent:
        exporter = exporter_for(agent.url)
        processor = LambdaSpanProcessor(exporter, background=False)
        provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("t")
        created = []
        for value in HOSTILE_TIMEOUTS:
            with tracer.start_as_current_span("op") as span:
                created.append(span.get_span_context().span_id)
            result = processor.force_flush(value)  # type: ignore[arg-type]
            assert result in (True, False)
            assert exporter.force_flush(value) in (True, False)  # type: ignore[arg-type]
            if isinstance(value, (int, float)):  # the SDK's provider itself does arithmetic on it
                assert provider.force_flush(value) in (True, False)
            assert exporter.export_until([], value) in tuple(SpanExportResult)  # type: ignore[arg-type]
        assert processor.force_flush(5000) is True
        assert sorted(agent.span_ids()) == sorted(created)
        assert exporter.dropped_spans == 0 and processor.dropped_spans == 0
        provider.shutdown()


def test_force_flush_hostile_timeouts_background_and_plain_exporter() -> None:
    for background in (True, False):
        memory = InMemorySpanExporter()
        processor = LambdaSpanProcessor(memory, background=background)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        for value in HOSTILE_TIMEOUTS:
            provider.get_tracer("t").start_span("s").end()
            assert processor.force_flush(value) in (True, False)  # type: ignore[arg-type]
        assert processor.force_flush(5000) is True
        assert len(memory.get_finished_spans()) == len(HOSTILE_TIMEOUTS), background
        provider.shutdown()


def test_error_body_is_escaped_and_truncated_in_logs(caplog: Any) -> None:
    body = b"bad\r\n2024-01-01 CRITICAL forged line\x1b[31m\x00" + "é".encode() * 3000
    with FakeAgent(lambda request: (400, body)) as agent:
        exporter = exporter_for(agent.url)
        with caplog.at_level(logging.ERROR, logger="otel_dd_lambda.exporters.datadog"):
            exporter.export(make_spans(1, 1))
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = record.getMessage()
    assert "\n" not in message and "\r" not in message and "\x1b" not in message and "\x00" not in message
    assert "bad\\x0d\\x0a2024-01-01 CRITICAL forged line\\x1b[31m\\x00" in message
    assert len(message) < 400


def test_probe_sees_a_restarted_agent_in_the_same_flush(client_sockets: List[ClientSocket]) -> None:
    # the hung agent is replaced by a working one on the same port: the outstanding probe's
    # connection dies, and the flush delivers at once instead of waiting for a new probe
    spans = make_spans(1, 3)
    with HostileAgent("blackhole") as hung:
        port = int(hung.url.rsplit(":", 1)[1])
        exporter = exporter_for(hung.url)
        exporter.export_until(spans, time.monotonic() + 0.5)
        exporter.export_until([], time.monotonic() + 0.5)  # leaves a probe outstanding
        # the request connection gave up at the deadline; the one left open is the probe's
        assert exporter.agent_hung and [sock.is_open for sock in client_sockets] == [False, True]
    with FakeAgent(port=port) as agent:
        assert exporter.force_flush(1000) is True
        assert sorted(agent.span_ids()) == ids(spans)


_WRAPPER_CHILD = r"""
import json, sys, time
from otel_dd_lambda.runtime.configure import configure, _processors
from otel_dd_lambda.runtime.wrapper import instrument_handler

configure(mode="agent")

class Context:
    function_name = "hung-agent"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:hung-agent"
    memory_limit_in_mb = 128
    client_context = None
    identity = None

    def __init__(self, request_id, budget_ms):
        self.aws_request_id = request_id
        self.end = time.monotonic() + budget_ms / 1000.0

    def get_remaining_time_in_millis(self):
        return int((self.end - time.monotonic()) * 1000)

@instrument_handler
def handler(event, context):
    return {"n": event["n"]}

budget = int(sys.argv[1])
def invoke(n):
    start = time.monotonic()
    result = handler({"n": n}, Context("req-%d" % n, budget))
    assert result == {"n": n}
    return time.monotonic() - start

print(json.dumps([invoke(n) for n in range(3)]), flush=True)
sys.stdin.readline()  # the agent is fixed meanwhile
took = invoke(3)
exporter = _processors[0].exporter
print(json.dumps({"took": took, "stats": exporter.stats()}), flush=True)
"""


@pytest.mark.parametrize("budget_ms,cap_ms", [(800, 30_000), (30_000, 700)])
def test_lambda_wrapper_flush_bounded_by_remaining_time_and_cap(budget_ms: int, cap_ms: int) -> None:
    # a real interpreter running the instrumented handler against a black-hole agent: the first
    # invocation ends within min(remaining time - margin, cap), later ones do not wait again,
    # and all four invocations reach the agent once it answers
    bound = min(budget_ms, cap_ms) / 1000.0
    with HostileAgent("blackhole") as agent:
        env = dict(os.environ)
        env.update({
            "PYTHONPATH": os.getcwd(), "AWS_LAMBDA_FUNCTION_NAME": "hung-agent",
            "DD_TRACE_AGENT_URL": agent.url, "OTEL_DD_LAMBDA_FLUSH_TIMEOUT_MS": str(cap_ms),
            "DD_COLD_START_TRACING": "false", "DD_TRACE_MANAGED_SERVICES": "false",
        })
        child = subprocess.Popen([sys.executable, "-c", _WRAPPER_CHILD, str(budget_ms)], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            times = json.loads(child.stdout.readline())
            agent.behaviour = "ok"
            time.sleep(0.2)
            child.stdin.write("go\n")
            child.stdin.flush()
            final = json.loads(child.stdout.readline())
            assert child.wait(60) == 0
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        received = agent.span_ids()
    assert times[0] <= bound + SLACK
    assert all(t < bound / 2 for t in times[1:]), times
    assert final["took"] <= bound + SLACK
    assert final["stats"]["sent_spans"] == 4 and final["stats"]["buffered_spans"] == 0
    assert len(received) == len(set(received)) == 4
