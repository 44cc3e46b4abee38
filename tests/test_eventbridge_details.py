"""EventBridge details: PutEvents injection adds ``x-datadog-start-time`` and ``x-datadog-resource-name``
to ``detail._datadog`` (as Datadog's Go/Java/.NET/JS tracers do), keeps the user's bytes and the
256 KiB entry limit (a real moto server, boto3 through our hook); extraction reads ``_datadog`` as an
object, a JSON string or base64 JSON; the inferred span starts at ``x-datadog-start-time``."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider

from otel_dd_lambda import extract_context, ids
from otel_dd_lambda.carriers import eventbridge
from otel_dd_lambda.injection import MAX_EVENTBRIDGE_ENTRY_BYTES, eventbridge_entry_bytes
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.moto_server import client, hooked, make_queue, receive
from tests.support.wrapper import FakeContext, pipeline


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("_X_AMZN_TRACE_ID", "DD_TRACE_EXTRACTOR", "DD_TRACE_PROPAGATION_STYLE", "OTEL_PROPAGATORS",
                 "DD_TRACE_PROPAGATION_STYLE_INJECT", "DD_TRACE_PROPAGATION_STYLE_EXTRACT", "DD_TRACE_MANAGED_SERVICES"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def tracer():
    return TracerProvider(id_generator=ids.DatadogXRayIdGenerator()).get_tracer("test")


def sent_entries(events):
    """The PutEvents entries as they leave boto3 (after our hook ran)."""
    captured = []
    events.meta.events.register("before-call.events.PutEvents",
                                lambda params, **kw: captured.append(params["body"]))
    return captured


def bus_to_queue(endpoint, bus=None):
    events, sqs = hooked(endpoint, "events"), client(endpoint, "sqs")
    if bus:
        events.create_event_bus(Name=bus)
    url, queue_arn = make_queue(sqs)
    rule = "r-" + uuid.uuid4().hex[:8]
    extra = {"EventBusName": bus} if bus else {}
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["my.app"]}), **extra)
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": queue_arn}], **extra)
    return events, sqs, url


@pytest.mark.parametrize("bus", ["orders-" + uuid.uuid4().hex[:6], None])
def test_put_events_adds_start_time_and_bus_name(endpoint, tracer, bus):
    events, sqs, url = bus_to_queue(endpoint, bus)
    bodies = sent_entries(events)
    detail = '{ "order" : 42,\n  "note": "caf\\u00e9 \u00e9" }'
    entry = {"Source": "my.app", "DetailType": "order", "Detail": detail}
    if bus:
        entry["EventBusName"] = bus
    before = time.time_ns() // 1_000_000
    with tracer.start_as_current_span("put") as span:
        events.put_events(Entries=[entry])
    after = time.time_ns() // 1_000_000
    assert entry["Detail"] == detail  # the caller's entry is not mutated
    (sent,) = json.loads(bodies[0])["Entries"]
    # the user's text byte for byte, the member spliced in before the closing brace
    head, _, tail = detail.rpartition("}")
    assert sent["Detail"].startswith(head) and sent["Detail"].endswith("}" + tail)
    member = sent["Detail"][len(head):-1 - len(tail)]
    assert member.startswith(',"_datadog":{')
    (message,) = receive(sqs, url)
    body = json.loads(message["Body"])
    carrier = body["detail"]["_datadog"]
    assert before <= int(carrier["x-datadog-start-time"]) <= after
    if bus:
        assert carrier["x-datadog-resource-name"] == bus
        assert eventbridge.resource_name(body) == bus
    else:
        assert "x-datadog-resource-name" not in carrier
        assert eventbridge.resource_name(body) is None
    found = extract_context(body)  # the event as EventBridge delivers it to a Lambda target
    assert (found.parent.trace_id, found.parent.span_id) == (span.get_span_context().trace_id,
                                                             span.get_span_context().span_id)
    assert found.event_time_ns == int(carrier["x-datadog-start-time"]) * 1_000_000


def test_entry_size_limit_respected(endpoint, tracer):
    """Entries from just under the limit down: injected only where the entry stays under 256 KiB."""
    events, _, _ = bus_to_queue(endpoint)
    bodies = sent_entries(events)
    base = {"Source": "my.app", "DetailType": "order"}
    overhead = eventbridge_entry_bytes(dict(base, Detail='{"p":""}'))
    details = ['{"p":"%s"}' % ("x" * (MAX_EVENTBRIDGE_ENTRY_BYTES - overhead - gap)) for gap in range(1, 700, 7)]
    injected = skipped = 0
    with tracer.start_as_current_span("put"):
        for detail in details:
            events.put_events(Entries=[dict(base, Detail=detail)])
    for body, detail in zip(bodies, details):
        (sent,) = json.loads(body)["Entries"]
        size = eventbridge_entry_bytes(sent)
        assert size < MAX_EVENTBRIDGE_ENTRY_BYTES
        if sent["Detail"] == detail:
            skipped += 1
        else:
            injected += 1
            assert json.loads(sent["Detail"])["p"] == json.loads(detail)["p"]
    assert injected and skipped


def test_batch_limit_respected(endpoint, tracer):
    """Two entries whose sum is just under the request limit: the context fits neither."""
    events, _, _ = bus_to_queue(endpoint)
    bodies = sent_entries(events)
    base = {"Source": "my.app", "DetailType": "order"}
    overhead = eventbridge_entry_bytes(dict(base, Detail='{"p":""}'))
    half = (MAX_EVENTBRIDGE_ENTRY_BYTES - 2) // 2 - overhead
    entries = [dict(base, Detail='{"p":"%s"}' % ("y" * half)) for _ in range(2)]
    with tracer.start_as_current_span("put"):
        events.put_events(Entries=entries)
    sent = json.loads(bodies[0])["Entries"]
    assert [e["Detail"] for e in sent] == [e["Detail"] for e in entries]
    assert sum(map(eventbridge_entry_bytes, sent)) < MAX_EVENTBRIDGE_ENTRY_BYTES


# ---------------------------------------------------------------- the three encodings of detail._datadog

_IDS = st.integers(1, 2**63 - 1)


def _encode(carrier, how, pad):
    if how == "object":
        return carrier
    text = pad + json.dumps(carrier) + pad
    return text if how == "json" else base64.b64encode(text.encode()).decode()


@settings(max_examples=200, deadline=None)
@given(_IDS, _IDS, st.integers(1_000_000_000_000, 4_000_000_000_000), st.text(min_size=1, max_size=30),
       st.sampled_from(["object", "json", "base64"]), st.sampled_from(["", " ", "\n\t"]))
def test_detail_datadog_in_three_encodings(trace_id, span_id, start_ms, bus, how, pad):
    carrier = {"x-datadog-trace-id": str(trace_id), "x-datadog-parent-id": str(span_id),
               "x-datadog-sampling-priority": "1", "x-datadog-start-time": str(start_ms),
               "x-datadog-resource-name": bus}
    event = {"version": "0", "id": "1", "detail-type": "t", "source": "my.app", "account": "123456789012",
             "time": "2024-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
             "detail": {"k": 1, "_datadog": _encode(carrier, how, pad if how != "object" else "")}}
    assert eventbridge.detail_carrier(event) == carrier
    found = extract_context(event)
    assert (found.parent.trace_id, found.parent.span_id) == (trace_id, span_id)
    assert found.event_time_ns == start_ms * 1_000_000
    assert eventbridge.resource_name(event) == bus


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=100).map(lambda b: base64.b64encode(b).decode()),
                 st.integers(), st.none(), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)))
def test_hostile_detail_datadog_is_no_context(raw):
    event = {"detail-type": "t", "source": "my.app", "time": "2024-01-01T00:00:00Z", "detail": {"_datadog": raw}}
    carrier = eventbridge.detail_carrier(event)
    assert carrier is None or type(carrier) is dict
    found = extract_context(event)
    assert found.trigger == "eventbridge"
    # the event's own time unless the carrier holds a start time
    assert found.event_time_ns == 1704067200 * 10**9 or eventbridge.START_TIME in (carrier or {})


def test_start_time_falls_back_to_the_event_time():
    event = {"detail-type": "t", "source": "my.app", "time": "2024-01-01T00:00:00Z",
             "detail": {"_datadog": {"x-datadog-start-time": "junk"}}}
    assert extract_context(event).event_time_ns == 1704067200 * 10**9
    del event["detail"]["_datadog"]
    assert extract_context(event).event_time_ns == 1704067200 * 10**9


def test_inferred_span_starts_at_the_producers_time(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "My-Func")
    monkeypatch.setenv("DD_COLD_START_TRACING", "false")
    start_ms = time.time_ns() // 1_000_000 - 1500
    event = {"version": "0", "id": "1", "detail-type": "t", "source": "my.app", "account": "123456789012",
             "time": "2000-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
             "detail": {"_datadog": json.dumps({"x-datadog-trace-id": "7", "x-datadog-parent-id": "8",
                                                "x-datadog-start-time": str(start_ms)})}}
    provider, memory = pipeline()
    instrument_handler(lambda e, c: None, tracer_provider=provider)(event, FakeContext())
    (inferred,) = [s for s in memory.get_finished_spans() if s.name == "aws.eventbridge"
                   or s.attributes.get("operation.name") == "aws.eventbridge"]
    assert inferred.start_time == start_ms * 1_000_000
    assert inferred.parent.trace_id == 7
