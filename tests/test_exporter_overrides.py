"""Datadog's ``datadog.*`` override attributes, mapped the way the Datadog Agent's OTLP ingest maps them.

The expected values come from the agent's rules, simulated here step by step in the agent's own order
(DataDog/datadog-agent pkg/trace/transform/transform.go: ``otelSpanToDDSpanMinimalOld`` sets the
fields and the error flag, ``otelSpanToDDSpanOld`` copies the namespaced meta keys span-then-resource
with ``copyAttrToMapIfExists``, maps the span attributes only where a key is still empty, then runs
``Status2Error`` unless error.msg/type/stack are all set; ``GetOTelStatusCode`` for the metric).
ddapm-test-agent does no OTLP -> Datadog mapping, so the simulation is the reference; the exporter
applies the same rules as a layer over its own mapping, so the two are written independently.
"""

from __future__ import annotations

import uuid
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from otel_dd_lambda.exporters.datadog import DatadogSpanExporter
from otel_dd_lambda.exporters.mapping import SpanMapper
from otel_dd_lambda.exporters.override_rules import go_string, normalize_tag_value
from otel_dd_lambda.exporters.overrides import OVERRIDE_KEYS
from tests.support.agent import TestAgent

SCOPE = InstrumentationScope("scope", "1")
UNSET = Status(StatusCode.UNSET)

# ---------------------------------------------------------------- the agent's rules, as a table

FIELD_KEYS = {"datadog.service": "service", "datadog.name": "name", "datadog.resource": "resource",
              "datadog.type": "type"}
META_KEYS = {"datadog.env": "env", "datadog.version": "version", "datadog.http_status_code": "http.status_code",
             "datadog.error.msg": "error.msg", "datadog.error.type": "error.type",
             "datadog.error.stack": "error.stack"}
ERROR_TAGS = ("error.msg", "error.type", "error.stack")
EXCEPTION_ATTRIBUTE = {"error.msg": "exception.message", "error.type": "exception.type",
                       "error.stack": "exception.stacktrace"}


def go_int(value: Any) -> int:
    """pdata ``Value.Int()``: the value of an int attribute, 0 for every other type."""
    return value if type(value) is int else 0


def int32(value: int) -> int:
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


def uint32(value: int) -> int:
    return value % (1 << 32)


def either(span_attrs: Mapping[str, Any], resource_attrs: Mapping[str, Any], key: str) -> str:
    """``GetOTelAttrFromEitherMap(span, resource, normalize=true, key)``."""
    if key in span_attrs:
        value = normalize_tag_value(go_string(span_attrs[key]))
        if value:
            return value
    return normalize_tag_value(go_string(resource_attrs[key])) if key in resource_attrs else ""


def agent_expectation(plain: Dict[str, Any], span_attrs: Mapping[str, Any], resource_attrs: Mapping[str, Any],
                      status_error: bool, events: Sequence[Event]) -> Dict[str, Any]:
    """``plain`` (the span mapped without any datadog.* attribute) as the agent changes it."""
    expected = dict(plain, meta=dict(plain["meta"]), metrics=dict(plain["metrics"]))
    # otelSpanToDDSpanMinimalOld: fields, span.kind, the error flag, the status code metric
    for key, field in FIELD_KEYS.items():
        expected[field] = either(span_attrs, resource_attrs, key) or plain[field]
    expected["meta"]["span.kind"] = either(span_attrs, resource_attrs, "datadog.span.kind") or \
        plain["meta"]["span.kind"]
    error = (int32(go_int(span_attrs["datadog.error"])) if "datadog.error" in span_attrs
             else int(status_error))
    if "datadog.http_status_code" in span_attrs:
        code = uint32(go_int(span_attrs["datadog.http_status_code"]))
    elif "datadog.http_status_code" in resource_attrs:
        code = uint32(go_int(resource_attrs["datadog.http_status_code"]))
    else:
        code = 0
    if code:
        expected["metrics"]["http.status_code"] = float(code)
    # otelSpanToDDSpanOld: the copy loop, span then resource, each overwriting when non-empty
    copied: Dict[str, str] = {}
    for key, tag in META_KEYS.items():
        for source in (span_attrs, resource_attrs):
            if key in source and go_string(source[key]) != "":
                copied[tag] = go_string(source[key])
    expected["meta"].update(copied)
    # then Status2Error, unless the three error tags are in meta (copies + non-numeric span attributes)
    in_meta = set(copied) | {k for k in ERROR_TAGS if k in span_attrs and type(span_attrs[k]) not in (int, float)}
    if not all(tag in in_meta for tag in ERROR_TAGS):
        error = int(status_error)
        if status_error:
            for event in events:
                if event.name.lower() == "exception":
                    for tag in ERROR_TAGS:
                        if tag in copied and EXCEPTION_ATTRIBUTE[tag] in event.attributes:
                            expected["meta"][tag] = go_string(event.attributes[EXCEPTION_ATTRIBUTE[tag]])
    expected["error"] = error
    return expected


# ---------------------------------------------------------------- helpers


def make_span(attributes: Dict[str, Any], resource: Resource, status: Status = UNSET,
              events: Sequence[Event] = (), kind: SpanKind = SpanKind.SERVER, name: str = "op") -> ReadableSpan:
    return ReadableSpan(
        name=name, context=SpanContext((7 << 64) | 11, 13, False), parent=None, kind=kind,
        attributes=attributes, resource=resource, status=status, events=list(events),
        start_time=1_000, end_time=2_000, instrumentation_scope=SCOPE,
    )


def map_chunked(span: ReadableSpan) -> Dict[str, Any]:
    (chunk,) = SpanMapper(service="fallback-svc", env="env-from-config", version="v-config").map_chunks([span])
    return chunk[0]


def without_namespace(attributes: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in attributes.items() if not k.startswith("datadog.")}


# ---------------------------------------------------------------- conversions


@pytest.mark.parametrize("text, normalized", [
    # pkg/trace/traceutil/normalize/normalize_test.go (TestNormalizeTag cases whose first character
    # a tag *value* keeps, and the NormalizeService cases)
    ("TestCAPSandSuch", "testcapsandsuch"),
    ("Test Conversion Of Weird !@#$%^&**() Characters", "test_conversion_of_weird_characters"),
    ("allowed:c0l0ns", "allowed:c0l0ns"),
    ("ünicöde:metäl", "ünicöde:metäl"),
    ("Data🐨dog🐶 繋がっ⛰てて", "data_dog_繋がっ_てて"),
    (":testing", ":testing"),
    (":::test", ":::test"),
    ("contiguous_____underscores", "contiguous_underscores"),
    ("foo_", "foo"),
    ("\u017Fodd_\u017Fcase\u017F", "\u017Fodd_\u017Fcase\u017F"),
    ("", ""),
    (" ", ""),
    ("AlsO:ök", "also:ök"),
    ("fun:ky__tag/1", "fun:ky_tag/1"),
    ("fun:ky@@@tag/3", "fun:ky_tag/3"),
    ("tag:1/2.3", "tag:1/2.3"),
    ("AlsO:œ#@ö))œk", "also:œ_ö_œk"),
    ("a\ufffd\ufffdb", "a_b"),
    ("a" * 888, "a" * 200),
    ("a" + "🐶" * 799 + "b", "a"),
    ("A" + "0" * 199 + " " + "0" * 12, "a" + "0" * 199),
    ("🐨animal-db🐶", "_animal-db"),
    ("1🐨1animal-db🐶", "1_1animal-db"),
    ("bad$service", "bad_service"),
    ("127.site.platform-db-replica1", "127.site.platform-db-replica1"),
    ("_foo", "_foo"),  # a value keeps its leading underscore (a tag would drop it)
    ("GET /users/{id}", "get_/users/_id"),
])
def test_normalize_tag_value_matches_the_agent_vectors(text: str, normalized: str) -> None:
    assert normalize_tag_value(text) == normalized


@pytest.mark.parametrize("value, text", [
    # pdata Value.AsString: ES6 number text for doubles, JSON for slices
    (1.0, "1"), (-0.0, "-0"), (0.5, "0.5"), (123456.789, "123456.789"), (1e20, "100000000000000000000"),
    (1e21, "1e+21"), (1.5e-7, "1.5e-7"), (1e-6, "0.000001"), (2.5e-10, "2.5e-10"),
    (float("nan"), "json: unsupported value: NaN"), (float("-inf"), "json: unsupported value: -Inf"),
    (True, "true"), (False, "false"), (-42, "-42"), ("x", "x"),
    (("a", "<b>"), '["a","\\u003cb\\u003e"]'), ((1, 2), "[1,2]"), ((1.0, 2.5), "[1,2.5]"), ((True,), "[true]"),
])
def test_values_read_as_the_agent_reads_them(value: Any, text: str) -> None:
    assert go_string(value) == text


# ---------------------------------------------------------------- the rules, example by example


def test_span_overrides_win_over_derived_values_and_leave_no_tag() -> None:
    resource = Resource({"service.name": "svc", "deployment.environment": "prod", "service.version": "1"})
    attributes = {
        "http.request.method": "GET", "http.route": "/users", "http.response.status_code": 200,
        "datadog.service": "Billing", "datadog.name": "web.request", "datadog.resource": "users_index",
        "datadog.type": "http", "datadog.span.kind": "client", "datadog.env": "staging",
        "datadog.version": "2.0", "datadog.http_status_code": 503, "datadog.unknown": "gone",
    }
    mapped = map_chunked(make_span(attributes, resource))
    assert (mapped["service"], mapped["name"], mapped["resource"], mapped["type"]) == \
        ("billing", "web.request", "users_index", "http")
    meta = mapped["meta"]
    assert (meta["span.kind"], meta["env"], meta["version"], meta["http.status_code"]) == \
        ("client", "staging", "2.0", "503")
    assert mapped["metrics"]["http.status_code"] == 503.0
    assert not [k for k in list(meta) + list(mapped["metrics"]) if k.startswith("datadog.")]


def test_resource_overrides_apply_to_every_span_and_span_values_win_for_fields() -> None:
    resource = Resource({"service.name": "svc", "datadog.service": "from-resource", "datadog.env": "res-env",
                         "datadog.name": "res.op", "datadog.container_id": "abc"})
    spans = [make_span({}, resource, name="a"),
             make_span({"datadog.service": "from-span", "datadog.env": "span-env"}, resource, name="b")]
    (chunk,) = SpanMapper().map_chunks(spans)
    first, second = chunk
    assert (first["service"], first["name"], first["meta"]["env"]) == ("from-resource", "res.op", "res-env")
    # fields: the span's value first; the meta copies: the resource's copy comes second and wins
    assert (second["service"], second["meta"]["env"]) == ("from-span", "res-env")
    for mapped in chunk:
        assert not [k for k in mapped["meta"] if k.startswith("datadog.")]


def test_empty_or_unnormalizable_field_values_fall_through() -> None:
    resource = Resource({"service.name": "svc", "datadog.service": "res"})
    mapped = map_chunked(make_span({"datadog.service": "🐶", "datadog.resource": "", "datadog.env": ""}, resource))
    assert mapped["service"] == "res"  # the span's value normalizes to "": the resource's is next
    assert mapped["resource"] == "op" and mapped["meta"]["env"] == "env-from-config"


@pytest.mark.parametrize("value, flag", [(1, 1), (0, 0), (7, 7), ((1 << 32) + 1, 1), (-1, -1), (True, 0),
                                         ("1", 0), (1.0, 0)])
def test_error_flag_needs_an_int_and_the_three_error_tags(value: Any, flag: int) -> None:
    attributes = {"datadog.error": value, "datadog.error.msg": "m", "datadog.error.type": "T",
                  "datadog.error.stack": "s"}
    mapped = map_chunked(make_span(attributes, Resource({"service.name": "svc"}), Status(StatusCode.ERROR, "d")))
    assert mapped["error"] == flag
    assert (mapped["meta"]["error.msg"], mapped["meta"]["error.type"], mapped["meta"]["error.stack"]) == \
        ("m", "T", "s")


def test_without_all_three_error_tags_the_status_decides_and_exception_events_win() -> None:
    resource = Resource({"service.name": "svc"})
    ok = map_chunked(make_span({"datadog.error": 1, "datadog.error.msg": "m"}, resource))
    assert ok["error"] == 0 and ok["meta"]["error.msg"] == "m"
    event = Event("exception", {"exception.message": "boom", "exception.type": "ValueError"})
    failed = map_chunked(make_span({"datadog.error": 0, "datadog.error.msg": "m"}, resource,
                                   Status(StatusCode.ERROR), events=[event]))
    assert failed["error"] == 1 and failed["meta"]["error.msg"] == "boom"
    assert failed["meta"]["error.type"] == "ValueError"


def test_http_status_code_override_types() -> None:
    resource = Resource({"service.name": "svc", "datadog.http_status_code": 418})
    as_text = map_chunked(make_span({"datadog.http_status_code": "404", "http.request.method": "GET",
                                     "http.response.status_code": 200}, resource))
    # a str reads 0 for the metric (the derived one stays); the meta copy is the resource's, last
    assert as_text["metrics"]["http.status_code"] == 200.0 and as_text["meta"]["http.status_code"] == "418"
    negative = map_chunked(make_span({"datadog.http_status_code": -1}, Resource({"service.name": "svc"})))
    assert negative["metrics"]["http.status_code"] == float((1 << 32) - 1)


def test_public_map_span_applies_them_too() -> None:
    mapped = SpanMapper().map_span(make_span({"datadog.name": "x.y"}, Resource({"service.name": "svc"})))
    assert mapped["name"] == "x.y" and "datadog.name" not in mapped["meta"]


def test_a_span_without_overrides_maps_as_before() -> None:
    resource = Resource({"service.name": "svc"})
    attributes = {"a": "b", "n": 3, "datadogish": "kept", "datadog": "kept"}
    mapped = map_chunked(make_span(attributes, resource))
    assert mapped["meta"]["datadogish"] == "kept" and mapped["meta"]["datadog"] == "kept"
    assert mapped["name"] == "server.request" and mapped["service"] == "svc"


# ---------------------------------------------------------------- generated spans vs the agent's rules

_text = st.one_of(
    st.sampled_from(["", "svc", "Web Request", "GET /users", "a_b", "🐶", "Ünicode:X", "500", "1"]),
    st.text(max_size=12),
)
_value = st.one_of(
    _text, st.booleans(), st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    st.integers(min_value=0, max_value=600), st.floats(allow_nan=False, width=64),
    st.lists(st.sampled_from(["a", "<", "x y"]), max_size=2).map(tuple),
)
_namespaced = sorted(OVERRIDE_KEYS) + ["datadog.host", "datadog.other"]
_plain_attributes = st.dictionaries(
    st.sampled_from(["error.msg", "error.type", "error.stack", "env", "http.request.method", "db.system",
                     "http.response.status_code", "custom"]),
    st.one_of(_text, st.integers(min_value=100, max_value=599)), max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    span_overrides=st.dictionaries(st.sampled_from(_namespaced), _value, max_size=8),
    resource_overrides=st.dictionaries(st.sampled_from(_namespaced), _value, max_size=5),
    plain=_plain_attributes,
    status=st.sampled_from([StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR]),
    exception=st.one_of(st.none(), st.dictionaries(
        st.sampled_from(["exception.message", "exception.type", "exception.stacktrace"]), _text, max_size=3)),
    kind=st.sampled_from([SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL]),
    invocation=st.booleans(),
)
def test_generated_overrides_follow_the_agent(span_overrides: Dict[str, Any], resource_overrides: Dict[str, Any],
                                              plain: Dict[str, Any], status: StatusCode,
                                              exception: Optional[Dict[str, Any]], kind: SpanKind,
                                              invocation: bool) -> None:
    base_resource = {"service.name": "svc", "deployment.environment": "prod", "service.version": "1.2"}
    if invocation:
        plain = dict(plain, **{"faas.invocation_id": "req-1"})
    events: List[Event] = [Event("exception", exception)] if exception is not None else []
    span_status = Status(status, "described" if status is StatusCode.ERROR else None)

    def mapped(attributes: Dict[str, Any], resource_attrs: Dict[str, Any]) -> Dict[str, Any]:
        return map_chunked(make_span(attributes, Resource(resource_attrs), span_status, events, kind))

    span_attrs = dict(plain, **span_overrides)
    resource_attrs = dict(base_resource, **resource_overrides)
    without = mapped(plain, base_resource)
    actual = mapped(span_attrs, resource_attrs)
    expected = agent_expectation(without, span_attrs, resource_attrs, status is StatusCode.ERROR, events)
    assert not [k for k in list(actual["meta"]) + list(actual["metrics"]) if k.startswith("datadog.")]
    assert actual == expected


# ---------------------------------------------------------------- end to end, the real ddapm-test-agent


def test_overrides_are_what_the_agent_receives(agent: TestAgent) -> None:
    token = "otel-dd-overrides-%s" % uuid.uuid4().hex
    agent.start_session(token)
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "datadog.version": "9.9"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test.scope", "1")
    with tracer.start_as_current_span("handler", kind=SpanKind.SERVER, attributes={
        "http.request.method": "POST", "http.route": "/orders",
        "datadog.service": "orders-api", "datadog.name": "aws.lambda.url", "datadog.resource": "create_order",
        "datadog.type": "serverless", "datadog.env": "qa", "datadog.http_status_code": 502,
        "datadog.error": 1, "datadog.error.msg": "upstream failed", "datadog.error.type": "Timeout",
        "datadog.error.stack": "at upstream()",
    }):
        pass
    provider.shutdown()
    exporter = DatadogSpanExporter(agent_url=agent.url, mode="agent", timeout=5.0,
                                   headers={"X-Datadog-Test-Session-Token": token})
    try:
        assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
        ((received,),) = agent.wait_for_traces(token, 1)
    finally:
        exporter.shutdown()
        agent.clear(token)
    assert (received["service"], received["name"], received["resource"], received["type"], received["error"]) == \
        ("orders-api", "aws.lambda.url", "create_order", "serverless", 1)
    meta = received["meta"]
    assert (meta["env"], meta["version"], meta["http.status_code"]) == ("qa", "9.9", "502")
    assert (meta["error.msg"], meta["error.type"], meta["error.stack"]) == ("upstream failed", "Timeout",
                                                                            "at upstream()")
    assert received["metrics"]["http.status_code"] == 502
    assert not [k for k in list(meta) + list(received["metrics"]) if k.startswith("datadog.")]
