"""Every sample event gives what Datadog's reference library extracts (manifest.json), except
where DESIGN.md names a defect of the reference: there the correct value, asserted as such."""

from __future__ import annotations

import base64
import json

import pytest

from otel_dd_lambda import extract_context, ids
from otel_dd_lambda.propagators import ddstate
from tests.support.reference import reference_extract
from tests.support.samples import SAMPLES as SAMPLES_DIR

SAMPLES = SAMPLES_DIR
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text())["events"]
# Where the reference reads an X-Ray header (AWSTraceHeader): we keep all 128 bits in OTel.
XRAY_DERIVED = {"sqs-java-upstream.json", "sns-sqs-java-upstream.json"}


class LambdaContext:
    """The context the manifest was generated with (region/account of the trigger ARNs)."""

    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:myfn"
    client_context = None


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("_X_AMZN_TRACE_ID", "DD_TRACE_EXTRACTOR", "DD_BATCH_PARENT", "DD_TRACE_PROPAGATION_STYLE",
                 "DD_TRACE_PROPAGATION_STYLE_EXTRACT", "OTEL_PROPAGATORS"):
        monkeypatch.delenv(name, raising=False)


def _priority(span_context) -> int:
    state = ddstate.parse_dd_member(span_context.trace_state.get("dd"))
    return ddstate.sampling_priority(span_context.trace_flags.sampled, state)


def test_manifest_covers_every_sample_file():
    files = {str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*.json") if p.name != "manifest.json"}
    assert files == set(MANIFEST)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_sample_matches_reference(name):
    expected = MANIFEST[name]
    event = json.loads((SAMPLES / name).read_text())
    result = extract_context(event, LambdaContext())

    assert result.trigger_tags == expected["trigger_tags"]
    want = expected["extracted"]
    if want is None:
        assert result.parent is None
        return
    parent = result.parent
    assert parent is not None and result.source == "event"
    assert str(parent.trace_id & ids.LOW64_MASK) == want["trace_id"]
    assert str(parent.span_id) == want["span_id"]
    assert _priority(parent) == int(want["sampling_priority"])
    tid = want["meta"].get("_dd.p.tid")
    if tid is not None:
        # Defect of the reference (DESIGN §4): it drops leading zeros of the Step Functions
        # `_dd.p.tid`; ours is the same number, always 16 hex digits (what ddtrace accepts).
        assert ids.format_tid(parent.trace_id) == tid.zfill(16)
    elif name in XRAY_DERIVED:
        # The reference keeps only the low 64 bits of an X-Ray id; we keep the full 128-bit X-Ray
        # trace id in OTel (Datadog id = low 64 bits, compared above; high = the epoch seconds).
        header = event["Records"][0]["attributes"].get("AWSTraceHeader") or ""
        if not header:
            body = json.loads(event["Records"][0]["body"])
            header = body.get("MessageAttributes", {}).get("AWSTraceHeader", {}).get("Value", "")
        if header:
            assert parent.trace_id == ids.parse_xray_trace_id(header.split(";")[0][5:])
    else:
        assert parent.trace_id >> 64 == 0
    origin = want["meta"].get("_dd.origin")
    if origin:
        assert ddstate.parse_dd_member(parent.trace_state.get("dd")).origin == origin


def _load(name):
    return json.loads((SAMPLES / name).read_text())


def test_sqs_batch_links_every_record_and_parents_on_first():
    event = _load("sqs-batch.json")
    result = extract_context(event)
    with_context = [r for r in event["Records"] if "_datadog" in r.get("messageAttributes", {})]
    assert len(result.links) == len(with_context) >= 2
    assert result.links[0].context == result.parent
    assert [link.attributes["messaging.message.id"] for link in result.links] == [r["messageId"] for r in with_context]


def test_batch_parent_none_is_a_new_root_with_links(monkeypatch):
    event = _load("sqs-batch.json")
    assert extract_context(event, batch_parent="none").parent is None
    monkeypatch.setenv("DD_BATCH_PARENT", "none")
    result = extract_context(event)
    assert result.parent is None and len(result.links) >= 2
    assert result.context.get("current-span-key") is None


def test_context_holds_parent_as_non_recording_span():
    from opentelemetry import trace

    result = extract_context(_load("sqs-string-msg-attribute.json"))
    span = trace.get_current_span(result.context)
    assert isinstance(span, trace.NonRecordingSpan)
    assert span.get_span_context() == result.parent and result.parent.is_remote


# ---------------------------------------------------------------- defects of the reference


def _reference(event):
    return reference_extract([event])[0]


def test_datadog_headers_without_priority_are_a_sampled_context():
    # Defect (DESIGN §4): the reference drops Datadog headers without a sampling priority.
    event = _load("api-gateway.json")
    event["headers"] = {"X-Datadog-Trace-Id": "4321", "X-Datadog-Parent-Id": "8765"}
    event.pop("multiValueHeaders", None)
    parent = extract_context(event).parent
    assert parent.trace_id == 4321 and parent.span_id == 8765 and _priority(parent) == 1
    ref = _reference(event)
    assert ref is None or ref["sampling_priority"] is None


def test_kinesis_non_ascii_payload():
    # Defect (DESIGN §4): the reference decodes Kinesis data as ASCII and loses the context.
    event = _load("kinesis.json")
    payload = {"greeting": "héllo wörld ✓", "_datadog": {"x-datadog-trace-id": "111", "x-datadog-parent-id": "222",
                                                           "x-datadog-sampling-priority": "2"}}
    event["Records"][0]["kinesis"]["data"] = base64.b64encode(json.dumps(payload, ensure_ascii=False).encode()).decode()
    parent = extract_context(event).parent
    assert (parent.trace_id, parent.span_id, _priority(parent)) == (111, 222, 2)
    assert _reference(event) is None


def test_lambda_xray_env_sampled_zero_does_not_unsample(monkeypatch):
    # Defect (DESIGN §3): the reference reads Sampled=0 as kept (priority 2). Ours: no context,
    # the function starts its own trace and its own sampler decides.
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0")
    assert extract_context({}).parent is None


def test_lambda_xray_env_is_the_last_fallback(monkeypatch):
    root = "1-5759e988-bd862e3fe1be46a994272793"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=%s;Parent=53995c3f42cd8ad8;Sampled=1" % root)
    result = extract_context({"hello": "world"})
    assert result.source == "xray" and result.parent.trace_id == ids.parse_xray_trace_id(root)
    assert result.parent.span_id == 0x53995C3F42CD8AD8 and _priority(result.parent) == 2
    # The reference masks to 63 bits; compare the Datadog id accordingly.
    # (datadog_lambda: 0x7FFF_FFFF_FFFF_FFFF & int(root[-16:], 16), DESIGN §3)
    assert ids.dd_trace_id_from_xray_root(result.parent.trace_id) == 0x7FFFFFFFFFFFFFFF & int(root[-16:], 16)
    # An event's own context always wins over Lambda's header.
    assert extract_context(_load("sqs-string-msg-attribute.json")).source == "event"


# ---------------------------------------------------------------- other carriers


def test_client_context_headers_and_legacy_datadog():
    class ClientContext:
        custom = {"x-datadog-trace-id": "5", "x-datadog-parent-id": "6", "x-datadog-sampling-priority": "1"}

    class Ctx(LambdaContext):
        client_context = ClientContext()

    result = extract_context({"foo": 1}, Ctx())
    assert (result.parent.trace_id, result.parent.span_id, result.source) == (5, 6, "client_context")
    ClientContext.custom = {"_datadog": {"x-datadog-trace-id": "7", "x-datadog-parent-id": "8"}}
    assert extract_context({}, Ctx()).parent.trace_id == 7


@pytest.mark.parametrize(
    "body, expected",
    [
        ("return (12, 34, 1)", (12, 34, 1)),
        ("return {'traceID': '56', 'parentID': '78', 'sampleMode': 2}", (56, 78, 2)),
        ("return {'x-datadog-trace-id': '90', 'x-datadog-parent-id': '91', 'x-datadog-sampling-priority': '0'}",
         (90, 91, 0)),
        ("raise ValueError('user bug')", None),
        ("return 'garbage'", None),
    ],
)
def test_custom_extractor(tmp_path, monkeypatch, body, expected):
    module = "my_extractor_%d" % abs(hash(body))
    (tmp_path / (module + ".py")).write_text("def extract(event, context):\n    %s\n" % body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DD_TRACE_EXTRACTOR", module + ".extract")
    parent = extract_context({"any": "event"}).parent
    if expected is None:
        assert parent is None
    else:
        assert (parent.trace_id, parent.span_id, _priority(parent)) == expected


def test_w3c_and_datadog_different_traces_give_terminated_link():
    event = _load("api-gateway.json")
    event["headers"] = {
        "x-datadog-trace-id": "1", "x-datadog-parent-id": "2", "x-datadog-sampling-priority": "1",
        "traceparent": "00-0000000000000000000000000000abcd-00000000000000ef-01",
    }
    result = extract_context(event)
    assert result.parent.trace_id == 1
    assert [link.attributes["reason"] for link in result.links] == ["terminated_context"]
    assert result.links[0].context.trace_id == 0xABCD


def test_alb_multivalue_headers_first_value():
    event = _load("application-load-balancer-multivalue-headers.json")
    assert "headers" not in event or not event["headers"]
    assert extract_context(event).parent.trace_id == 12345


def test_mqtt_iot_rule_payload():
    event = {"temperature": 21, "_datadog": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
    parent = extract_context(event).parent
    assert parent.trace_id == 0x0AF7651916CD43DD8448EB211C80319C and parent.span_id == 0xB7AD6B7169203331


@pytest.mark.parametrize(
    "name, expected",
    [
        ("sqs-string-msg-attribute.json", lambda e: int(e["Records"][0]["attributes"]["SentTimestamp"]) * 10**6),
        ("kinesis.json", lambda e: int(e["Records"][0]["kinesis"]["approximateArrivalTimestamp"] * 10**6) * 1000),
        ("eventbridge-custom.json", None),
        ("api-gateway.json", lambda e: e["requestContext"]["requestTimeEpoch"] * 10**6),
        ("dynamodb.json", lambda e: int(e["Records"][0]["dynamodb"]["ApproximateCreationDateTime"] * 10**9)),
        ("s3.json", None),
        ("sns-string-msg-attribute.json", None),
    ],
)
def test_event_time(name, expected):
    event = _load(name)
    value = extract_context(event).event_time_ns
    assert type(value) is int and value >= 0
    if expected is not None:
        assert abs(value - expected(event)) < 1000


def test_a_datadog_object_with_x_datadog_sampled_is_read_as_trace_headers_only(monkeypatch):
    # Node.js senders put x-datadog-sampled, which no tracer reads, beside the trace headers (as in
    # this sample): such a _datadog is still read as trace headers only, not through the general
    # path that looks for other spellings of the names among an HTTP request's headers
    from otel_dd_lambda.propagators import headers

    event = json.loads((SAMPLES / "sqs-batch.json").read_text())
    carrier = json.loads(event["Records"][0]["messageAttributes"]["_datadog"]["stringValue"])
    assert "x-datadog-sampled" in carrier

    def general_path(*args):
        raise AssertionError("the general header path was taken")

    monkeypatch.setattr(headers, "_layout", general_path)
    parent = extract_context(event, LambdaContext()).parent
    assert parent is not None
    assert (parent.trace_id, parent.span_id) == (int(carrier["x-datadog-trace-id"]),
                                                 int(carrier["x-datadog-parent-id"]))
    assert _priority(parent) == int(carrier["x-datadog-sampling-priority"])
