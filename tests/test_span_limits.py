"""Datadog's size limits: every tag and resource within the agent's own limits, and a span too
large for a payload or a log line cut until it fits, never lost; each cost logged once, counted.

The big case is the one that matters: a handler raising ``ValueError("x" * 50_000)``, whose
message lands in several tags of the invocation span, through the wrapper, in log mode and to
the real ddapm-test-agent.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Any, Dict

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_dd_lambda.exporters.datadog import DatadogSpanExporter
from otel_dd_lambda.exporters.encoding import V04Encoder
from otel_dd_lambda.exporters.mapping import SpanMapper
from otel_dd_lambda.exporters.optional_encodings import encode_log_lines
from otel_dd_lambda.exporters.shrink import shrink_span
from otel_dd_lambda.limits import MAX_META_KEY, MAX_META_VALUE, MAX_RESOURCE, truncate_utf8
from otel_dd_lambda.runtime import cold_start
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.wrapper import FakeContext, pipeline, sample

BIG = 50_000
LOGGER = "otel_dd_lambda.exporters.mapping"


@pytest.fixture(autouse=True)
def lambda_sandbox(monkeypatch):
    for name in ("DD_TRACE_ENABLED", "DD_MERGE_XRAY_TRACES", "_X_AMZN_TRACE_ID", "OTEL_SDK_DISABLED",
                 "DD_SERVICE", "OTEL_DD_LAMBDA_KEEP_URL_QUERY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "My-Func")
    monkeypatch.setenv("DD_COLD_START_TRACING", "false")
    monkeypatch.setenv("DD_TRACE_MANAGED_SERVICES", "false")
    cold_start._reset_for_tests()


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8"))


def _raising_handler(provider: Any) -> Any:
    def handler(event: Any, context: Any) -> Any:
        raise ValueError("x" * BIG)

    return instrument_handler(handler, tracer_provider=provider)


def _assert_within_limits(span: Dict[str, Any]) -> None:
    assert _nbytes(span["resource"]) <= MAX_RESOURCE
    for key, value in span["meta"].items():
        assert _nbytes(key) <= MAX_META_KEY and _nbytes(value) <= MAX_META_VALUE, key
    for key in span["metrics"]:
        assert _nbytes(key) <= MAX_META_KEY


def _assert_error_span(span: Dict[str, Any]) -> None:
    """The invocation span of the raising handler: error tags present, the message cut."""
    meta = span["meta"]
    assert span["name"] == "aws.lambda" and span["error"] == 1
    assert meta["request_id"] == "req-0001" and meta["function_trigger.event_source"] == "api-gateway"
    assert meta["error.type"].endswith("ValueError")
    assert "xxxx" in meta["error.msg"] and meta["error.msg"].endswith("...")
    assert 1000 <= _nbytes(meta["error.msg"]) <= MAX_META_VALUE
    assert "error.stack" in meta
    _assert_within_limits(span)


# ---------------------------------------------------------------- the big exception, end to end


def test_huge_exception_reaches_the_log_truncated():
    out = io.StringIO()
    exporter = DatadogSpanExporter(mode="log", out=out)
    provider, _ = pipeline(exporter)
    with pytest.raises(ValueError):
        _raising_handler(provider)(sample("api-gateway.json"), FakeContext())
    lines = out.getvalue().splitlines()
    assert lines and all(_nbytes(line) <= exporter.max_log_line for line in lines)
    spans = [s for line in lines for chunk in json.loads(line)["traces"] for s in chunk]
    (span,) = [s for s in spans if s["name"] == "aws.lambda"]
    _assert_error_span(span)
    assert _nbytes(span["meta"]["error.msg"]) == MAX_META_VALUE  # cut at the limit, "..." included
    json.loads(span["meta"]["events"])  # still valid JSON, shortened before it was a tag
    assert exporter.rejected_spans == 0 and exporter.limits.counts.get("tag", 0) >= 2


def test_huge_exception_over_a_small_log_line_is_cut_not_lost():
    out = io.StringIO()
    exporter = DatadogSpanExporter(mode="log", out=out, max_log_line=16 * 1024)
    provider, _ = pipeline(exporter)
    with pytest.raises(ValueError):
        _raising_handler(provider)(sample("api-gateway.json"), FakeContext())
    lines = out.getvalue().splitlines()
    assert all(_nbytes(line) <= 16 * 1024 for line in lines)
    (span,) = [s for line in lines for chunk in json.loads(line)["traces"] for s in chunk]
    assert span["error"] == 1 and span["meta"]["error.type"].endswith("ValueError")
    assert span["meta"]["request_id"] == "req-0001"
    assert "xxx" in span["meta"]["error.msg"]
    assert "otel_dd_lambda.size_limit" in span["meta"]
    assert exporter.rejected_spans == 0 and exporter.limits.counts["span_cut"] == 1


@pytest.mark.parametrize("max_payload", [None, 12 * 1024])
def test_huge_exception_reaches_the_agent_truncated(agent, max_payload):
    token = "otel-dd-limits-%s" % uuid.uuid4().hex
    agent.start_session(token)
    options = {"max_payload_size": max_payload} if max_payload else {}
    exporter = DatadogSpanExporter(agent.url, mode="agent", headers={"X-Datadog-Test-Session-Token": token},
                                   **options)
    provider, _ = pipeline(exporter)
    with pytest.raises(ValueError):
        _raising_handler(provider)(sample("api-gateway.json"), FakeContext())
    assert exporter.sent_spans == 1 and exporter.stats()["oversized_spans"] == 0
    assert exporter.rejected_spans == 0
    (span,) = [s for chunk in agent.wait_for_traces(token, 1) for s in chunk]
    assert span["span_id"] and span["trace_id"] == 12345 and span["parent_id"] == 67890
    assert span["error"] == 1 and span["meta"]["error.type"].endswith("ValueError")
    assert "xxx" in span["meta"]["error.msg"]
    _assert_within_limits(span)
    if max_payload:
        assert "otel_dd_lambda.size_limit" in span["meta"]
        assert exporter.limits.counts["span_cut"] == 1
    else:
        _assert_error_span(span)
    agent.clear(token)


# ---------------------------------------------------------------- one warning per cause, counted


RESOURCE = Resource.create({"service.name": "svc"})
SCOPE = InstrumentationScope("scope", "1")


UNSET = Status(StatusCode.UNSET)


def _span(span_id: int, attributes: Dict[str, Any], name: str = "op", status: Status = UNSET,
          events: Any = ()) -> ReadableSpan:
    return ReadableSpan(
        name=name, context=SpanContext(7, span_id, False, TraceFlags(1)), kind=SpanKind.INTERNAL,
        attributes=attributes, resource=RESOURCE, status=status, start_time=1, end_time=2,
        instrumentation_scope=SCOPE, events=events,
    )


def test_a_warning_once_per_cause_with_its_count(caplog):
    out = io.StringIO()
    exporter = DatadogSpanExporter(mode="log", out=out)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        exporter.export([_span(1, {"a": "y" * 30_000, "b": "z" * 30_000}), _span(2, {"c": "w" * 26_000})])
        exporter.export([_span(3, {"d": "v" * 40_000})])
        exporter.export([_span(4, {"r": 1}, name="n" * 6_000)])
    tag_logs = [r for r in caplog.records if "tag keys/values" in r.getMessage()]
    assert len(tag_logs) == 1 and r"3 tag keys/values" in tag_logs[0].getMessage()
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    resource_logs = [r for r in caplog.records if "resources cut" in r.getMessage()]
    assert len(resource_logs) == 1 and "1 resources" in resource_logs[0].getMessage()
    assert exporter.limits.counts == {"tag": 4, "resource": 1}
    spans = [s for line in out.getvalue().splitlines() for c in json.loads(line)["traces"] for s in c]
    assert len(spans) == 4
    assert [s["resource"] for s in spans][-1] == "n" * MAX_RESOURCE


def test_a_dropped_span_is_a_counted_warning(caplog):
    # 200 metrics overflow a 512-byte line: cut to its skeleton the span fits. A 300-byte line
    # holds not even the skeleton (name and service keep up to 100 bytes): dropped, never silently
    chunk = [{"trace_id": 1, "span_id": 2, "parent_id": 0, "start": 0, "duration": 1, "error": 0,
              "name": "n", "service": "s", "resource": "r", "type": "", "meta": {"k": "v"},
              "metrics": {"m%04d" % i: 1.0 for i in range(200)}}]
    from otel_dd_lambda.exporters.mapping import LimitLog

    limits = LimitLog()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        lines, dropped = encode_log_lines([chunk], 512, limits)
    assert dropped == 0 and len(lines) == 1  # cut to the skeleton: metrics without "_" go
    assert limits.counts == {"span_cut": 1}
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        lines, dropped = encode_log_lines([[dict(chunk[0], name="é" * 50, service="s" * 90)]], 300, limits)
    assert dropped == 1 and lines == [] and limits.counts["span_dropped"] == 1
    assert any("1 spans could not fit" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- truncation, by property


def _cut_text() -> Any:
    piece = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
    return st.tuples(piece, st.integers(1, 9_000)).map(lambda t: t[0] * t[1])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=_cut_text(), limit=st.integers(0, 30_000), marker=st.sampled_from(["", "..."]))
def test_truncate_utf8_is_the_longest_prefix_within_the_limit(text, limit, marker):
    out = truncate_utf8(text, limit, marker)
    data = text.encode("utf-8")
    if len(data) <= limit:
        assert out is text
        return
    assert out.endswith(marker)
    head = out[: len(out) - len(marker)]
    assert text.startswith(head) and _nbytes(out) <= max(limit, len(marker))
    room = limit - len(marker)
    if room > 0:  # maximal: one more character would not fit
        assert _nbytes(head) + _nbytes(text[len(head)]) > room


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(attributes=st.dictionaries(_cut_text().map(lambda s: s[:2_000]), _cut_text(), max_size=4),
       name=_cut_text(), message=_cut_text())
def test_any_huge_or_unicode_tag_maps_within_limits(attributes, name, message):
    event_span = _span(1, attributes, name=name, status=Status(StatusCode.ERROR, message))
    (chunk,) = SpanMapper().map_chunks([event_span])
    span = chunk[0]
    _assert_within_limits(span)
    for key, value in attributes.items():
        cut_key = truncate_utf8(key, MAX_META_KEY, "...")
        if cut_key in span["meta"] and cut_key == key:
            got = span["meta"][key]
            assert got == value or (got.endswith("...") and value.startswith(got[:-3]))
    # every encoding accepts it, and the payload and log line limits hold
    payloads = V04Encoder().payloads([chunk], 64 * 1024)
    assert sum(p.span_count for p in payloads) == 1 and all(len(p.body) <= 64 * 1024 for p in payloads)
    msgpack.unpackb(payloads[0].body)
    lines, dropped = encode_log_lines([chunk], 32 * 1024)
    assert dropped == 0 and all(_nbytes(line) <= 32 * 1024 for line in lines)
    json.loads(lines[0])


def test_shrink_keeps_the_identifying_tags_and_the_stack_ends():
    stack = "Traceback (most recent call last):\n" + "  File frame\n" * 5_000 + "ValueError: boom"
    span = {"trace_id": 1, "span_id": 2, "parent_id": 0, "start": 0, "duration": 1, "error": 1, "name": "aws.lambda",
            "service": "svc", "resource": "fn", "type": "serverless",
            "meta": {"error.stack": stack, "error.type": "ValueError", "request_id": "r", "blob": "b" * 20_000,
                     "small": "kept"},
            "metrics": {"_sampling_priority_v1": 1}}
    size = lambda s: len(msgpack.packb(s))  # noqa: E731
    cut = shrink_span(span, size, 8 * 1024)
    assert cut is not None and size(cut) <= 8 * 1024
    meta = cut["meta"]
    assert meta["error.stack"].startswith("Traceback") and meta["error.stack"].endswith("ValueError: boom")
    assert meta["blob"].startswith("[cut: 20000 bytes") and meta["small"] == "kept"
    assert meta["error.type"] == "ValueError" and meta["request_id"] == "r"
    assert span["meta"]["blob"] == "b" * 20_000  # the original is left as it was


def test_span_events_tag_stays_valid_json_within_the_limit():
    from opentelemetry.sdk.trace import Event

    events = [Event("exception", {"exception.message": "é" * 30_000, "exception.stacktrace": "s" * 40_000})] * 3
    (chunk,) = SpanMapper().map_chunks([_span(1, {}, events=events)])
    text = chunk[0]["meta"]["events"]
    assert _nbytes(text) <= MAX_META_VALUE
    decoded = json.loads(text)
    assert len(decoded) == 3 and decoded[0]["attributes"]["exception.message"].startswith("ééé")

