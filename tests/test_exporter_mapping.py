"""Mapping rules, encodings (cross-checked with ddtrace's encoder), log mode, configuration."""

from __future__ import annotations

import io
import json
from typing import Any, Dict

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from otel_dd_lambda.exporters import datadog as datadog_module
from otel_dd_lambda.exporters.datadog import DatadogSpanExporter, resolve_mode
from otel_dd_lambda.exporters.encoding import V04Encoder
from otel_dd_lambda.exporters.mapping import SpanMapper
from otel_dd_lambda.exporters.optional_encodings import V05Encoder, encode_log_lines
from otel_dd_lambda.exporters.transport import parse_agent_url, resolve_endpoint

RESOURCE = Resource.create({"service.name": "svc"})
SCOPE = InstrumentationScope("scope", "1")


UNSET = Status(StatusCode.UNSET)
NO_STATE = TraceState()


def span(name: str = "op", trace_id: int = (3 << 64) | 5, span_id: int = 9, parent: Any = None,
         kind: SpanKind = SpanKind.INTERNAL, attributes: Dict[str, Any] = None, resource=RESOURCE,
         status: Status = UNSET, trace_state: TraceState = NO_STATE,
         sampled: bool = True) -> ReadableSpan:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else 0)
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, span_id, False, flags, trace_state),
        parent=parent, kind=kind, attributes=attributes or {}, resource=resource, status=status,
        start_time=1_000, end_time=3_500, instrumentation_scope=SCOPE,
    )


def map_one(**kwargs: Any) -> Dict[str, Any]:
    (chunk,) = SpanMapper().map_chunks([span(**kwargs)])
    return chunk[0]


@pytest.mark.parametrize(
    "kind, attributes, name, resource, span_type",
    [
        (SpanKind.SERVER, {"http.request.method": "POST", "http.route": "/u/{id}"},
         "http.server.request", "POST /u/{id}", "web"),
        (SpanKind.CLIENT, {"http.method": "GET"}, "http.client.request", "GET", "http"),
        (SpanKind.CLIENT, {"db.system": "redis", "db.statement": "GET k"}, "redis.query", "GET k", "redis"),
        (SpanKind.CLIENT, {"db.system": "mysql", "db.query.text": "SELECT 2"}, "mysql.query", "SELECT 2", "sql"),
        (SpanKind.CLIENT, {"db.system": "dynamodb"}, "dynamodb.query", "op", "db"),
        (SpanKind.PRODUCER, {"messaging.system": "aws_sqs", "messaging.operation": "publish",
                             "messaging.destination.name": "q"}, "aws_sqs.publish", "publish q", "custom"),
        (SpanKind.CLIENT, {"rpc.system": "aws-api", "rpc.service": "S3", "rpc.method": "GetObject"},
         "aws.s3.request", "GetObject S3", "http"),
        (SpanKind.SERVER, {"rpc.system": "grpc", "rpc.method": "M", "rpc.service": "S"},
         "grpc.server.request", "M S", "web"),
        (SpanKind.SERVER, {"faas.trigger": "http"}, "http.invoke", "op", "web"),
        (SpanKind.CLIENT, {"faas.invoked_provider": "aws", "faas.invoked_name": "fn"},
         "aws.fn.invoke", "op", "http"),
        (SpanKind.SERVER, {}, "server.request", "op", "web"),
        (SpanKind.CLIENT, {}, "client.request", "op", "http"),
        (SpanKind.CONSUMER, {}, "consumer", "op", "custom"),
        (SpanKind.INTERNAL, {"operation.name": "custom.op", "resource.name": "R", "span.type": "worker"},
         "custom.op", "R", "worker"),
    ],
)
def test_semantic_conventions(kind, attributes, name, resource, span_type) -> None:
    mapped = map_one(kind=kind, attributes=attributes)
    assert (mapped["name"], mapped["resource"], mapped["type"]) == (name, resource, span_type)
    assert mapped["meta"]["span.kind"] == kind.name.lower()


def test_sampling_priority_rules() -> None:
    def priority(state: str, sampled: bool) -> int:
        ts = TraceState([("dd", state)]) if state else TraceState()
        return map_one(trace_state=ts, sampled=sampled)["metrics"]["_sampling_priority_v1"]

    assert priority("s:2", True) == 2
    assert priority("s:-1", False) == -1
    assert priority("s:-1", True) == 1  # disagrees with the flag: the flag wins
    assert priority("s:2", False) == 0
    assert priority("", True) == 1
    assert priority("", False) == 0


def test_chunking_and_roots() -> None:
    parent_ctx = SpanContext((1 << 64) | 1, 100, False)
    remote = SpanContext((1 << 64) | 1, 55, True, trace_state=TraceState([("dd", "s:1;p:0000000000000037")]))
    spans = [
        span("child", trace_id=(1 << 64) | 1, span_id=101, parent=parent_ctx),
        span("other", trace_id=7, span_id=200),
        span("root", trace_id=(1 << 64) | 1, span_id=100, parent=remote),
    ]
    first, second = SpanMapper().map_chunks(spans)
    assert [s["span_id"] for s in first] == [101, 100]
    assert first[0]["meta"]["_dd.p.tid"] == "0000000000000001"
    assert "_dd.p.tid" not in first[1]["meta"]
    assert "_sampling_priority_v1" not in first[0]["metrics"]
    assert first[1]["metrics"]["_sampling_priority_v1"] == 1
    assert first[1]["meta"]["_dd.parent_id"] == "0000000000000037"
    assert first[1]["parent_id"] == 55
    assert "_dd.p.tid" not in second[0]["meta"]  # high bits zero: no tid
    # a partial chunk (root not ended) tags its first span
    (partial,) = SpanMapper().map_chunks([spans[0]])
    assert partial[0]["metrics"]["_sampling_priority_v1"] == 1


def test_resource_tags_on_chunk_head_and_roots() -> None:
    resource = Resource({"service.name": "svc", "service.version": "7", "deployment.environment": "qa",
                         "cloud.region": "eu-west-1", "telemetry.sdk.language": "python"})
    root_ctx = SpanContext(11, 1, False)
    spans = [
        span("child", trace_id=11, span_id=2, parent=root_ctx, resource=resource,
             attributes={"cloud.region": "override"}),
        span("root", trace_id=11, span_id=1, resource=resource),
        span("child2", trace_id=11, span_id=3, parent=root_ctx, resource=resource),
    ]
    (chunk,) = SpanMapper().map_chunks(spans)
    head, root, other = chunk
    assert head["meta"]["cloud.region"] == "override"  # the span's own attribute wins
    assert root["meta"]["cloud.region"] == "eu-west-1" and root["meta"]["telemetry.sdk.language"] == "python"
    assert "cloud.region" not in other["meta"] and "otel.trace_id" not in other["meta"]
    for dd_span in chunk:  # env and version on every span; service.name is the service field
        assert dd_span["meta"]["env"] == "qa" and dd_span["meta"]["version"] == "7"
        assert dd_span["service"] == "svc" and "service.name" not in dd_span["meta"]
    assert head["meta"]["otel.trace_id"] == root["meta"]["otel.trace_id"] == "%032x" % 11


def test_service_fallbacks(monkeypatch) -> None:
    monkeypatch.setenv("DD_SERVICE", "from-env")
    unknown = Resource({"service.name": "unknown_service:python", "faas.name": "fn"})
    assert SpanMapper().map_chunks([span(resource=unknown)])[0][0]["service"] == "from-env"
    monkeypatch.delenv("DD_SERVICE")
    assert SpanMapper().map_chunks([span(resource=unknown)])[0][0]["service"] == "fn"
    assert map_one(attributes={"service.name": "override"})["service"] == "override"


def test_attribute_types_are_agent_safe() -> None:
    mapped = map_one(attributes={
        "big": 1 << 70, "neg": -5, "nan": float("nan"), "inf": float("inf"), "b": True,
        "ints": [1, 2], "strs": ("a", "b"), "empty": [],
    })
    ((encoded,),) = msgpack.unpackb(V04Encoder().payloads([[mapped]], 1 << 20)[0].body)
    assert encoded["metrics"]["big"] == float(1 << 70)  # msgpack has no 70-bit ints
    assert mapped["metrics"]["neg"] == -5
    assert "nan" not in mapped["metrics"] and "inf" not in mapped["metrics"]
    assert mapped["meta"]["b"] == "true"
    assert mapped["meta"]["ints"] == "[1,2]" and mapped["meta"]["strs"] == '["a","b"]'
    (table, traces) = msgpack.unpackb(V05Encoder().encode([[mapped]]), strict_map_key=False)
    assert {table[k]: v for k, v in traces[0][0][10].items()}["big"] == float(1 << 70)


_attr_value = st.one_of(
    st.text(max_size=20), st.booleans(), st.integers(min_value=-(1 << 80), max_value=1 << 80),
    st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(-10, 10), max_size=3),
    st.lists(st.text(max_size=5), max_size=3),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attributes=st.dictionaries(st.text(min_size=1, max_size=15), _attr_value, max_size=8),
    name=st.text(max_size=30),
    trace_id=st.integers(min_value=1, max_value=(1 << 128) - 1),
    span_id=st.integers(min_value=1, max_value=(1 << 64) - 1),
    kind=st.sampled_from(list(SpanKind)),
    dd_state=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)
def test_any_span_maps_to_a_valid_payload(attributes, name, trace_id, span_id, kind, dd_state) -> None:
    try:  # TraceState refuses some values (it logs and keeps nothing): either is fine here
        state = TraceState([("dd", dd_state)]) if dd_state else TraceState()
    except Exception:
        state = TraceState()
    chunks = SpanMapper().map_chunks([span(name, trace_id, span_id, kind=kind, attributes=attributes,
                                           trace_state=state)])
    (chunk,) = chunks
    (mapped,) = chunk
    assert mapped["trace_id"] == trace_id & ((1 << 64) - 1)
    assert all(type(k) is str and type(v) is str for k, v in mapped["meta"].items())
    assert all(type(v) in (int, float) and v == v for v in mapped["metrics"].values())
    if trace_id >> 64:
        assert int(mapped["meta"]["_dd.p.tid"], 16) == trace_id >> 64
    for encoder in (V04Encoder(), V05Encoder()):
        (payload,) = encoder.payloads(chunks, 1 << 20)
        decoded = msgpack.unpackb(payload.body, strict_map_key=False)
        assert decoded
    lines, dropped = encode_log_lines(chunks, 1 << 20)
    assert dropped == 0 and json.loads(lines[0])["traces"][0][0]["name"] == mapped["name"]


def test_encoding_matches_ddtrace_field_types() -> None:
    from ddtrace.internal._encoding import MsgpackEncoderV04
    from ddtrace.trace import Span as DDSpan

    dd_root = DDSpan("op", service="svc", resource="res", span_type="web", trace_id=5, span_id=9,
                     parent_id=None)
    dd_root.set_tag("k", "v")
    dd_root.set_metric("m", 1.5)
    dd_root.set_metric("i", 3)
    dd_root.error = 1
    dd_root.finish()
    reference = MsgpackEncoderV04(1 << 20, 1 << 20)
    reference.put([dd_root])
    ((body, count),) = reference.encode()
    (theirs,) = msgpack.unpackb(body)[0]

    ours_chunks = SpanMapper().map_chunks([span(attributes={"k": "v", "m": 1.5, "i": 3},
                                                status=Status(StatusCode.ERROR))])
    (ours,) = msgpack.unpackb(V04Encoder().encode(ours_chunks))[0]
    for field, value in theirs.items():
        assert field in ours, field
        assert type(ours[field]) is type(value), field
    assert type(ours["parent_id"]) is int
    assert ours["meta"]["k"] == "v" and ours["metrics"]["m"] == 1.5 and ours["metrics"]["i"] == 3
    assert type(ours["metrics"]["i"]) is type(theirs["metrics"]["i"])
    # and ddtrace's own decoder reads our body
    decoded = reference._decode(V04Encoder().encode(ours_chunks))[0][0]
    assert decoded.get("name", decoded.get(b"name")) in (ours["name"], ours["name"].encode())


def test_v05_layout() -> None:
    chunks = SpanMapper().map_chunks([span(attributes={"a": "b", "n": 2})])
    table, traces = msgpack.unpackb(V05Encoder().encode(chunks), strict_map_key=False)
    assert table[0] == ""
    (row,) = traces[0]
    assert len(row) == 12
    assert table[row[0]] == "svc" and table[row[1]] == "internal" and table[row[2]] == "op"
    assert row[3] == 5 and row[4] == 9 and row[6] == 1000 and row[7] == 2500
    meta = {table[k]: table[v] for k, v in row[9].items()}
    assert meta["a"] == "b" and meta["_dd.p.tid"] == "0000000000000003"
    assert {table[k]: v for k, v in row[10].items()}["n"] == 2
    assert table[row[11]] == "custom"


def test_log_mode_prints_one_json_line_per_flush() -> None:
    out = io.StringIO()
    exporter = DatadogSpanExporter(mode="log", out=out)
    spans = [span("a", span_id=1), span("b", trace_id=8, span_id=2)]
    exporter.export(spans)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    document = json.loads(lines[0])
    assert set(document) == {"traces"}
    assert [len(t) for t in document["traces"]] == [1, 1]
    first = document["traces"][0][0]
    assert first["trace_id"] == "0000000000000005" and first["span_id"] == "0000000000000001"
    assert first["parent_id"] == "0000000000000000"
    assert first["service"] == "svc" and first["meta"]["_dd.p.tid"] == "0000000000000003"
    assert first["metrics"]["_sampling_priority_v1"] == 1


def test_log_mode_stdout_and_long_lines(capsys) -> None:
    exporter = DatadogSpanExporter(mode="log", max_log_line=2048)
    spans = [span("s", span_id=i + 1, attributes={"blob": "y" * 400}) for i in range(10)]
    exporter.export(spans)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 1 and all(len(line) <= 2048 for line in lines)
    ids = [s["span_id"] for line in lines for t in json.loads(line)["traces"] for s in t]
    assert sorted(ids) == ["%016X" % (i + 1) for i in range(10)]


def test_mode_resolution(monkeypatch, tmp_path) -> None:
    for name in ("OTEL_DD_LAMBDA_EXPORT_MODE", "AWS_LAMBDA_FUNCTION_NAME", "DD_TRACE_AGENT_URL",
                 "DD_AGENT_HOST", "DD_FLUSH_TO_LOG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(datadog_module, "EXTENSION_PATH", str(tmp_path / "datadog-agent"))
    assert resolve_mode(None, None) == "agent"
    monkeypatch.setenv("DD_FLUSH_TO_LOG", "true")
    assert resolve_mode(None, None) == "log"
    assert resolve_mode("agent", None) == "agent"
    monkeypatch.delenv("DD_FLUSH_TO_LOG")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    assert resolve_mode(None, None) == "log"  # Lambda, no extension, no agent configured
    assert resolve_mode(None, "http://127.0.0.1:9") == "agent"
    (tmp_path / "datadog-agent").write_text("")
    assert resolve_mode(None, None) == "agent"
    monkeypatch.setenv("OTEL_DD_LAMBDA_EXPORT_MODE", "log")
    assert resolve_mode(None, None) == "log"
    assert resolve_mode("agent", None) == "agent"
    assert DatadogSpanExporter().mode == "log"  # constructible without arguments


def test_endpoint_resolution(monkeypatch) -> None:
    for name in ("DD_TRACE_AGENT_URL", "DD_AGENT_HOST", "DD_TRACE_AGENT_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_endpoint().url == "http://127.0.0.1:8126"
    monkeypatch.setenv("DD_AGENT_HOST", "agent.local")
    monkeypatch.setenv("DD_TRACE_AGENT_PORT", "9000")
    assert resolve_endpoint().url == "http://agent.local:9000"
    monkeypatch.setenv("DD_TRACE_AGENT_URL", "unix:///var/run/datadog/apm.socket")
    assert resolve_endpoint().url == "unix:///var/run/datadog/apm.socket"
    assert resolve_endpoint("https://intake:443").url == "https://intake:443"
    assert parse_agent_url("ftp://x") is None
    assert parse_agent_url("unix:/tmp/s").host == "/tmp/s"


def test_endpoint_is_a_value() -> None:
    # a slotted class in place of a NamedTuple: still compared, hashed and shown by value
    a, b = parse_agent_url("http://h:1"), parse_agent_url("http://h:1")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != parse_agent_url("http://h:2") and a != ("http", "h", 1)
    assert repr(a) == "Endpoint(scheme='http', host='h', port=1)"


def test_module_import_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys; import otel_dd_lambda.exporters.datadog; "
            "bad = [m for m in ('ddtrace', 'datadog_lambda', 'requests', 'urllib3', 'google.protobuf', "
            "'opentelemetry.exporter') if m in sys.modules]; print(bad)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_registered_as_otel_traces_exporter() -> None:
    from opentelemetry.util._importlib_metadata import entry_points

    (entry,) = entry_points(group="opentelemetry_traces_exporter", name="datadog")
    exporter = entry.load()()  # the SDK's auto-configuration builds it with no arguments
    assert isinstance(exporter, DatadogSpanExporter)
    exporter.shutdown()


def test_private_field_fast_paths_agree_with_the_public_properties(monkeypatch) -> None:
    # The mapper reads private OTel fields when the layout probe found them; on another layout
    # it uses the public properties. Both must give the same Datadog spans, links included.
    from opentelemetry.trace import Link

    from otel_dd_lambda.exporters import mapping

    linked = SpanContext(7 << 64 | 8, 11, True, TraceFlags(1),
                         TraceState([("dd", "s:1;t.tid:0000000000000007"), ("vendor", "v1")]))
    root = ReadableSpan(
        name="aws.lambda",
        context=SpanContext((3 << 64) | 5, 9, False, TraceFlags(1), TraceState([("dd", "s:2;o:lambda")])),
        parent=SpanContext((3 << 64) | 5, 4, True, TraceFlags(1), TraceState([("dd", "s:2;p:00000000000000aa")])),
        kind=SpanKind.SERVER, resource=RESOURCE, instrumentation_scope=SCOPE, start_time=1_000, end_time=3_500,
        attributes={"faas.invocation_id": "r1", "faas.coldstart": True, "faas.name": "fn", "tags": ["a", "b"]},
        links=[Link(linked, {"messaging.message.id": "m1", "n": 3, "seq": ("x", 2)}), Link(linked)],
    )
    child = span(name="child", parent=root.context, attributes={"k": 1.5, "flag": False})
    # the bounded containers of a live SDK span (ended, as exporters receive them)
    provider = TracerProvider(resource=RESOURCE)
    with provider.get_tracer("t").start_as_current_span("live", links=[Link(linked, {"a": 1})]) as live:
        live.add_event("exception", {"exception.type": "E", "exception.message": "m"})
        live.set_status(StatusCode.ERROR)
    assert type(live) in mapping._SDK_SPAN_TYPES  # this SDK's layout is the known one
    fast = SpanMapper().map_chunks([child, root, live])
    # an SDK whose span layout differs: the probe finds no known type, the public API is read
    monkeypatch.setattr(mapping, "_SPAN_FIELDS", mapping._SPAN_FIELDS + ("_not_in_this_sdk",))
    monkeypatch.setattr(mapping, "_SDK_SPAN_TYPES", mapping._sdk_span_types())
    assert mapping._SDK_SPAN_TYPES == frozenset()
    assert SpanMapper().map_chunks([child, root, live]) == fast
    assert fast[0][1]["span_links"][0]["attributes"] == {
        "messaging.message.id": "m1", "n": "3", "seq.0": "x", "seq.1": "2"}
    assert fast[1][0]["error"] == 1 and fast[1][0]["meta"]["error.type"] == "E"
    assert fast[1][0]["span_links"][0]["attributes"] == {"a": "1"}


def test_memos_of_the_last_bases_and_trace_states_never_mix_spans() -> None:
    # one mapper over spans whose bases (kind, status) and trace states alternate, repeat and
    # change maps each span as a mapper of its own does
    states = [TraceState([("dd", "s:2;o:rum;t.dm:-4")]), TraceState([("dd", "s:-1")]), NO_STATE]
    spans = []
    for i in range(9):
        kind = (SpanKind.SERVER, SpanKind.CLIENT, SpanKind.SERVER)[i % 3]
        status = (Status(StatusCode.ERROR, "e"), UNSET, Status(StatusCode.OK))[i % 2]
        parent = SpanContext(100 + i, 7, True, TraceFlags(1), states[i % 3]) if i % 4 else None
        spans.append(span(name="s%d" % i, trace_id=100 + i, span_id=10 + i, parent=parent, kind=kind,
                          status=status, trace_state=states[(i // 2) % 3], sampled=i % 5 != 1))
    mapper = SpanMapper()
    together = [mapper.map_chunks(spans), mapper.map_chunks(spans[::-1])]
    assert together == [[SpanMapper().map_chunks([s])[0] for s in order] for order in (spans, spans[::-1])]


def test_invocation_span_named_by_conventions_or_by_its_own_attributes() -> None:
    # without operation/resource/type attributes the serverless conventions decide all three and
    # no semantic lookup is built: the HTTP status still becomes a metric
    http = {"faas.invocation_id": "r", "faas.name": "fn", "http.request.method": "GET", "http.route": "/x",
            "http.response.status_code": 201}

    def mapped(extra: Dict[str, Any]) -> Any:
        (chunk,) = SpanMapper().map_chunks([span(kind=SpanKind.SERVER, attributes={**http, **extra})])
        return chunk[0]

    plain = mapped({})
    assert (plain["name"], plain["resource"], plain["type"]) == ("aws.lambda", "fn", "serverless")
    assert plain["metrics"]["http.status_code"] == 201.0
    named = mapped({"resource.name": "R", "span.type": "web"})
    assert (named["name"], named["resource"], named["type"]) == ("aws.lambda", "R", "web")
    assert "resource.name" not in named["meta"] and "span.type" not in named["meta"]
    assert named["metrics"]["http.status_code"] == 201.0
    assert mapped({"operation.name": "op"})["name"] == "op"


def test_links_sharing_a_context_map_as_links_of_their_own() -> None:
    # a batch's links often share one context object: its fields are computed once per mapping,
    # and each link still gets its own dict with its own attributes, as when mapped alone
    from opentelemetry.trace import Link

    shared = SpanContext(7 << 64 | 8, 11, True, TraceFlags(1), TraceState([("dd", "s:1"), ("v", "x")]))
    other = SpanContext(9, 12, True, TraceFlags(0))
    pointer = SpanContext(0, 0, False)
    links = [Link(shared, {"messaging.message.id": "m1"}), Link(other), Link(shared, {"messaging.message.id": "m2"}),
             Link(pointer, {"ptr.kind": "aws.s3.object"}), Link(shared)]

    def mapped(link_list: Any) -> Any:
        linking = ReadableSpan(name="op", context=SpanContext(5, 9, False, TraceFlags(1)), links=link_list,
                               resource=RESOURCE, instrumentation_scope=SCOPE, start_time=1_000, end_time=3_500)
        (chunk,) = SpanMapper().map_chunks([linking])
        return chunk[0]["span_links"]

    together = mapped(links)
    assert together == [mapped([link])[0] for link in links]
    assert [list(item) for item in together] == [list(mapped([link])[0]) for link in links]  # key order too
    assert together[0] == {"trace_id": 8, "trace_id_high": 7, "span_id": 11,
                           "attributes": {"messaging.message.id": "m1"}, "tracestate": "dd=s:1,v=x",
                           "flags": 1 | 1 << 31}
    assert together[2]["attributes"] == {"messaging.message.id": "m2"} and "attributes" not in together[4]
    assert together[3] == {"trace_id": 0, "span_id": 0, "attributes": {"ptr.kind": "aws.s3.object"}}
    assert together[1] == {"trace_id": 9, "trace_id_high": 0, "span_id": 12, "flags": 1 << 31}
    assert len({id(item) for item in together}) == len(links)


def test_link_attributes_are_cut_to_the_tag_limits_and_the_span_keeps_its_own() -> None:
    # link attributes follow the tag limits: str values and keys short enough go through as they
    # are; a long value, a long key or a non-str value takes the general path (cut, flattened)
    from opentelemetry.trace import Link

    from otel_dd_lambda.limits import MAX_META_KEY, MAX_META_VALUE, utf8_len

    context = SpanContext(5, 6, True, TraceFlags(1))
    long_key, long_value = "k" * (MAX_META_KEY + 1), "\u00e9" * (MAX_META_VALUE // 2 + 1)  # over in bytes
    cases = [{"id": "m1", "edge": "v" * (MAX_META_VALUE // 4)},
             {"id": "m1", "long": long_value},
             {long_key: "v", "id": "m1"},
             {"id": "m1", "n": 3}]
    span = ReadableSpan(name="op", context=SpanContext(5, 9, False, TraceFlags(1)),
                        links=[Link(context, attributes) for attributes in cases],
                        resource=RESOURCE, instrumentation_scope=SCOPE, start_time=1_000, end_time=3_500)
    (chunk,) = SpanMapper().map_chunks([span])
    short, cut_value, cut_key, flattened = (link["attributes"] for link in chunk[0]["span_links"])
    assert short == cases[0]
    assert cut_value["id"] == "m1" and cut_value["long"].endswith("...")
    assert utf8_len(cut_value["long"]) <= MAX_META_VALUE < utf8_len(long_value)
    assert list(cut_key) == ["k" * (MAX_META_KEY - 3) + "...", "id"]
    assert flattened == {"id": "m1", "n": "3"}
    assert [dict(link.attributes) for link in span.links] == cases  # the span's own are untouched


def test_settings_object_replaces_the_environment(monkeypatch) -> None:
    # One read of the environment (config.ExporterSettings) drives mode, endpoint, flush cap and
    # the mapper's defaults; a settings object given by the caller wins over os.environ.
    from otel_dd_lambda.config import ExporterSettings

    monkeypatch.setenv("DD_TRACE_AGENT_URL", "http://from-env:1")
    monkeypatch.setenv("DD_SERVICE", "from-env")
    settings = ExporterSettings({
        "DD_AGENT_HOST": "agent.local", "DD_TRACE_AGENT_PORT": "9000", "OTEL_DD_LAMBDA_EXPORT_MODE": "agent",
        "OTEL_DD_LAMBDA_FLUSH_TIMEOUT_MS": "250", "DD_SERVICE": "from-settings", "DD_ENV": "staging",
    })
    exporter = DatadogSpanExporter(settings=settings)
    assert exporter.mode == "agent" and exporter.endpoint.url == "http://agent.local:9000"
    assert exporter.timeout == 0.25
    # the same settings written out in log mode: the mapper took its defaults from them
    out = io.StringIO()
    logged = DatadogSpanExporter(settings=settings, mode="log", out=out)
    logged.export([span(resource=Resource.create({"service.name": "unknown_service"}))])
    (dd,) = json.loads(out.getvalue())["traces"][0]
    assert dd["service"] == "from-settings" and dd["meta"]["env"] == "staging"
    log = DatadogSpanExporter(settings=ExporterSettings({"AWS_LAMBDA_FUNCTION_NAME": "fn", "DD_FLUSH_TO_LOG": "1"}))
    assert log.mode == "log"
