"""DD_MERGE_XRAY_TRACES: Lambda's segment as parent, and the datadog-metadata datagram (DESIGN §7)."""

from __future__ import annotations

import json
import socket

import pytest

from otel_dd_lambda.runtime import cold_start, xray_merge
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.wrapper import FakeContext, pipeline, sample

ROOT = "1-5e272390-8c398be037738dc042009320"
PARENT = "94ae789b969f1cc5"


@pytest.fixture
def daemon():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock, "127.0.0.1:%d" % sock.getsockname()[1]
    sock.close()


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("DD_COLD_START_TRACING", "false")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "My-Func")
    cold_start._reset_for_tests()


def read_datagram(sock):
    data, _ = sock.recvfrom(70_000)
    header, _, body = data.decode().partition("\n")
    assert header == '{"format": "json", "version": 1}'
    return json.loads(body)


def test_merge_parents_on_lambda_segment_and_sends_subsegment(monkeypatch, daemon):
    sock, address = daemon
    monkeypatch.setenv("DD_MERGE_XRAY_TRACES", "true")
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", address)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=%s;Parent=%s;Sampled=1" % (ROOT, PARENT))
    provider, memory = pipeline()
    instrument_handler(lambda e, c: None, tracer_provider=provider)({}, FakeContext())
    (span,) = memory.get_finished_spans()
    assert "%032x" % span.context.trace_id == ROOT[2:10] + ROOT[11:]
    assert span.parent.span_id == int(PARENT, 16)
    doc = read_datagram(sock)
    assert set(doc) == {"id", "trace_id", "parent_id", "name", "start_time", "end_time", "type", "metadata"}
    assert doc["trace_id"] == ROOT and doc["parent_id"] == PARENT and doc["name"] == "datadog-metadata"
    assert doc["type"] == "subsegment" and len(doc["id"]) == 16 and int(doc["id"], 16)
    assert isinstance(doc["start_time"], float) and doc["end_time"] >= doc["start_time"]
    trace = doc["metadata"]["datadog"]["trace"]
    assert trace == {"trace-id": str(span.context.trace_id & (2**64 - 1)), "parent-id": str(int(PARENT, 16)),
                     "sampling-priority": "2"}


def test_event_context_wins_and_is_what_the_subsegment_carries(monkeypatch, daemon):
    sock, address = daemon
    monkeypatch.setenv("DD_MERGE_XRAY_TRACES", "true")
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", "tcp:127.0.0.1:1 udp:" + address)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=%s;Parent=%s;Sampled=1" % (ROOT, PARENT))
    provider, memory = pipeline()
    event = sample("api-gateway.json")  # Datadog headers: trace 12345, parent 67890, priority 2
    instrument_handler(lambda e, c: None, tracer_provider=provider)(event, FakeContext())
    span = [s for s in memory.get_finished_spans() if "faas.invocation_id" in s.attributes][0]
    assert span.context.trace_id & (2**64 - 1) == 12345
    trace = read_datagram(sock)["metadata"]["datadog"]["trace"]
    assert trace == {"trace-id": "12345", "parent-id": "67890", "sampling-priority": "2"}


def test_unsampled_sends_nothing(monkeypatch, daemon):
    sock, address = daemon
    sock.settimeout(0.3)
    monkeypatch.setenv("DD_MERGE_XRAY_TRACES", "true")
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", address)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=%s;Parent=%s;Sampled=0" % (ROOT, PARENT))
    provider, memory = pipeline()
    instrument_handler(lambda e, c: None, tracer_provider=provider)(sample("api-gateway.json"), FakeContext())
    with pytest.raises(socket.timeout):
        sock.recvfrom(70_000)


def test_without_merge_lambda_segment_is_not_the_parent(monkeypatch):
    monkeypatch.delenv("DD_MERGE_XRAY_TRACES", raising=False)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=%s;Parent=%s;Sampled=1" % (ROOT, PARENT))
    provider, memory = pipeline()
    instrument_handler(lambda e, c: None, tracer_provider=provider)({}, FakeContext())
    (span,) = memory.get_finished_spans()
    assert span.parent is None


def test_oversized_datagram_is_not_built():
    assert xray_merge.build_datagram("Root=%s;Parent=%s;Sampled=1" % (ROOT, PARENT), 1, 2, 1) is not None
    huge = xray_merge.build_datagram
    # the metadata is fixed-size, so force the limit down to check the guard
    limit = xray_merge.MAX_DATAGRAM
    try:
        xray_merge.MAX_DATAGRAM = 100
        assert huge("Root=%s;Parent=%s;Sampled=1" % (ROOT, PARENT), 1, 2, 1) is None
    finally:
        xray_merge.MAX_DATAGRAM = limit


@pytest.mark.parametrize("value,expected", [
    ("127.0.0.1:2000", ("127.0.0.1", 2000)), ("tcp:10.0.0.1:2000 udp:10.0.0.2:2001", ("10.0.0.2", 2001)),
    ("", None), ("nohost", None), ("h:99999", None), ("h:x", None)])
def test_daemon_address(value, expected):
    assert xray_merge.parse_daemon_address(value) == expected
