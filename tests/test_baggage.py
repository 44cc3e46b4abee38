"""W3C baggage against ddtrace's ``HTTPPropagator`` (4.16): which items a header yields (hostile
headers too), which header items yield, which ``baggage.<key>`` tags appear; and the Lambda path:
baggage in the handler's context, in outgoing headers, as tags of the invocation span."""

from __future__ import annotations

import json
import os
import string

import pytest
from ddtrace._trace.context import Context as DDContext
from ddtrace.internal.settings._config import Config as DDConfig
from ddtrace.propagation.http import HTTPPropagator
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry.context import Context

from otel_dd_lambda import config, extract_context
from otel_dd_lambda.injection import get_trace_headers
from otel_dd_lambda.propagators import baggage
from otel_dd_lambda.propagators.composite import DatadogCompositePropagator
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.wrapper import FakeContext, pipeline

EVENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "events")
_ENV = ("DD_TRACE_PROPAGATION_STYLE", "DD_TRACE_PROPAGATION_STYLE_EXTRACT", "DD_TRACE_PROPAGATION_STYLE_INJECT",
        "OTEL_PROPAGATORS", "DD_TRACE_BAGGAGE_TAG_KEYS", "DD_TRACE_BAGGAGE_MAX_ITEMS", "DD_TRACE_BAGGAGE_MAX_BYTES",
        "_X_AMZN_TRACE_ID", "DD_TRACE_EXTRACTOR", "DD_TRACE_MANAGED_SERVICES", "DD_COLD_START_TRACING")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


def dd_items(headers):
    return HTTPPropagator.extract(headers).get_all_baggage_items()


def our_items(headers, composite=None):
    composite = composite or DatadogCompositePropagator()
    return dict(otel_baggage.get_all(composite.extract(headers)))


def dd_header(items):
    headers: dict = {}
    HTTPPropagator.inject(DDContext(baggage=dict(items)), headers)
    return headers.get("baggage")


def our_header(items):
    context = Context()
    for key, value in items.items():
        context = otel_baggage.set_baggage(key, value, context)
    carrier: dict = {}
    DatadogCompositePropagator().inject(carrier, context)
    return carrier.get("baggage")


# ---------------------------------------------------------------- configuration


def test_baggage_is_a_default_style_as_in_ddtrace():
    dd = DDConfig()
    assert "baggage" in dd._propagation_style_extract and "baggage" in dd._propagation_style_inject
    assert config.BAGGAGE in config.propagation_styles("extract", {})
    assert config.BAGGAGE in config.propagation_styles("inject", {})
    assert "baggage" in DatadogCompositePropagator().fields


def test_limits_from_the_environment():
    assert config.baggage_limits({}) == (64, 8192)
    assert config.baggage_limits({"DD_TRACE_BAGGAGE_MAX_ITEMS": "2", "DD_TRACE_BAGGAGE_MAX_BYTES": "10"}) == (2, 10)
    assert config.baggage_limits({"DD_TRACE_BAGGAGE_MAX_ITEMS": "0", "DD_TRACE_BAGGAGE_MAX_BYTES": "x"}) == (64, 8192)


def test_limits_are_applied(monkeypatch):
    monkeypatch.setenv("DD_TRACE_BAGGAGE_MAX_ITEMS", "2")
    assert our_items({"baggage": "a=1,b=2,c=3"}) == {"a": "1", "b": "2"}
    assert our_header({"a": "1", "b": "2", "c": "3"}) == "a=1,b=2"


def test_style_off_reads_and_writes_no_baggage(monkeypatch):
    monkeypatch.setenv("DD_TRACE_PROPAGATION_STYLE", "datadog,tracecontext")
    assert our_items({"baggage": "user.id=1"}) == {}
    assert our_header({"user.id": "1"}) is None
    assert extract_context({"headers": {"baggage": "user.id=1"}, "httpMethod": "GET",
                            "requestContext": {"stage": "x"}}).baggage is None


# ---------------------------------------------------------------- extraction, differential

HOSTILE = [
    "user.id=amy,account.id=42",
    " user.id = amy , session.id=s1 ",
    "k=v;prop=1;flag",  # W3C properties: ddtrace keeps them in the value
    "k=a=b",  # "=" in a value
    ",".join("k%d=v" % i for i in range(100)),  # too many items
    ",".join("k%d=%s" % (i, "x" * 200) for i in range(60)),  # too many bytes
    ",".join("k%d=%s" % (i, "é" * 150) for i in range(40)),  # too many bytes, counted in UTF-8
    "a=" + "x" * 9000,  # one item over the byte limit
    "a=1," + "b=" + "x" * 9000 + ",c",  # over the limit, then malformed past it
    "a=" + "x" * 8190 + ",novalue",  # exactly 8,192 bytes, then a malformed item: malformed
    "a=" + "x" * 8189 + ",b",  # the same, one byte less
    "a=" + "x" * 8189 + ",b=1",  # the next item is over the limit: dropped
    "a=%zz,b=%,c=%e2%82,d=%E2%82%AC,e=%ff",  # malformed percent-encoding, truncated and invalid UTF-8
    "%41%42=%43",
    "novalue",
    "a=1,novalue",
    "a=1,",  # trailing comma: an empty item
    "=v",
    "k=",
    "k= ",
    "a=1,a=2",
    "",
    ",",
    "a=1,,b=2",
]


@pytest.mark.parametrize("header", HOSTILE)
def test_extraction_matches_ddtrace(header):
    assert our_items({"baggage": header}) == dd_items({"baggage": header})


def test_extraction_with_a_trace_context_matches_ddtrace():
    headers = {"x-datadog-trace-id": "123", "x-datadog-parent-id": "456", "x-datadog-sampling-priority": "1",
               "baggage": "user.id=amy"}
    assert our_items(headers) == dd_items(headers) == {"user.id": "amy"}


def test_a_header_of_a_megabyte_is_read_like_ddtrace():
    header = ",".join("k%d=v" % i for i in range(100_000))
    assert our_items({"baggage": header}) == dd_items({"baggage": header})
    header = "a=1," + "b=" + "x" * 1_000_000
    assert our_items({"baggage": header}) == dd_items({"baggage": header}) == {"a": "1"}


def test_header_name_as_producers_spell_it():
    assert our_items({"Baggage": "user.id=amy"}) == dd_items({"Baggage": "user.id=amy"}) == {"user.id": "amy"}
    assert DatadogCompositePropagator().extract_baggage({"BAGGAGE": ["user.id=amy"]}) == {"user.id": "amy"}
    assert DatadogCompositePropagator().extract_baggage({"baggage": b"user.id=amy"}) == {"user.id": "amy"}
    # a known difference: other casings, which no producer writes, are not looked for (ddtrace lowers every key)
    assert our_items({"bAgGaGe": "user.id=amy"}) == {} != dd_items({"bAgGaGe": "user.id=amy"})


_HEADER_CHARS = st.sampled_from(list(",=%; \t") + list("ab%éx€") + ["%2C", "%3D", "%ZZ", "%e2", "%E2%82%AC"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_HEADER_CHARS, max_size=60).map("".join))
@example("a=1," * 70)
def test_extraction_matches_ddtrace_on_random_headers(header):
    assert our_items({"baggage": header}) == dd_items({"baggage": header})


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 70), st.integers(1, 400))
def test_limits_match_ddtrace(count, size):
    header = ",".join("key%d=%s" % (i, "v" * size) for i in range(count))
    assert our_items({"baggage": header}) == dd_items({"baggage": header})


# ---------------------------------------------------------------- injection, differential

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="%"), min_size=1,
                max_size=20).filter(lambda s: s.strip())


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_TEXT, _TEXT, max_size=8))
def test_injection_matches_ddtrace(items):
    ours, theirs = our_header(items), dd_header(items)
    assert ours == (theirs or None)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(string.printable + "é€%", min_size=1, max_size=12).filter(lambda s: s.strip()),
                       st.text(string.printable + "é€%", min_size=1, max_size=12).filter(lambda s: s.strip()),
                       max_size=8))
def test_our_header_reads_back_in_ddtrace(items):
    """Percent signs too: encoded by us (W3C requires it), so ddtrace reads back what was sent."""
    header = our_header(items)
    expected = {key.strip(): value.strip() for key, value in items.items()}
    if header is None:
        assert not expected
    else:
        assert dd_items({"baggage": header}) == expected


@pytest.mark.parametrize("items", [
    {"k%d" % i: "v" for i in range(100)},  # more than 64 items
    {"k%d" % i: "x" * 300 for i in range(40)},  # more than 8,192 bytes
    {"k%d" % i: "é" * 100 for i in range(40)},  # more than 8,192 bytes once encoded
])
def test_injection_limits_match_ddtrace(items):
    assert our_header(items) == dd_header(items)


def test_one_item_over_the_limit_writes_no_header():
    # ddtrace writes an empty "baggage" header here; an empty header means no baggage to both readers
    assert dd_header({"a": "x" * 9000}) == ""
    assert our_header({"a": "x" * 9000}) is None


def test_injection_without_a_span_and_with_a_setter():
    context = otel_baggage.set_baggage("user.id", "amy", Context())
    written = []

    class Setter:
        def set(self, carrier, key, value):
            written.append((key, value))

    DatadogCompositePropagator().inject({}, context, Setter())
    assert written == [("baggage", "user.id=amy")]
    token = otel_context.attach(context)
    try:
        assert get_trace_headers() == {"baggage": "user.id=amy"}
    finally:
        otel_context.detach(token)


# ---------------------------------------------------------------- tags, differential


@pytest.mark.parametrize("tag_keys", [None, "*", "", " user.id , x ", "x,*", "nope"])
def test_tags_match_ddtrace(monkeypatch, tag_keys):
    header = "user.id=amy,account.id=42,session.id=s1,x=%20y"
    if tag_keys is not None:
        monkeypatch.setenv("DD_TRACE_BAGGAGE_TAG_KEYS", tag_keys)
    dd = DDConfig()
    monkeypatch.setattr("ddtrace.propagation.http.config._baggage_tag_keys", dd._baggage_tag_keys)
    expected = {k: v for k, v in HTTPPropagator.extract({"baggage": header})._meta.items() if k.startswith("baggage.")}
    items = our_items({"baggage": header})
    assert baggage.span_tags(items, config.baggage_tag_keys()) == expected


# ---------------------------------------------------------------- the Lambda path


def _api_gateway(headers):
    with open(os.path.join(EVENTS, "api-gateway.json")) as handle:
        event = json.load(handle)
    event["headers"] = dict(event.get("headers") or {}, **headers)
    event["multiValueHeaders"] = {}
    return event


def _invoke(event, monkeypatch, **env):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "My-Func")
    monkeypatch.setenv("DD_COLD_START_TRACING", "false")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    provider, memory = pipeline()
    seen = {}

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        seen["baggage"] = dict(otel_baggage.get_all())
        seen["headers"] = get_trace_headers()
        return {"statusCode": 200}

    handler(event, FakeContext())
    (span,) = [s for s in memory.get_finished_spans() if "faas.invocation_id" in s.attributes]
    return span, seen


def test_invocation_span_tags_and_handler_context(monkeypatch):
    event = _api_gateway({"x-datadog-trace-id": "123", "x-datadog-parent-id": "456",
                          "Baggage": "user.id=amy,account.id=42,color=blue"})
    span, seen = _invoke(event, monkeypatch)
    assert span.parent.trace_id == 123
    assert {k: v for k, v in span.attributes.items() if k.startswith("baggage.")} == {
        "baggage.user.id": "amy", "baggage.account.id": "42"}
    assert seen["baggage"] == {"user.id": "amy", "account.id": "42", "color": "blue"}
    assert seen["headers"]["baggage"] == "user.id=amy,account.id=42,color=blue"  # sent on to the next service


def test_every_key_with_a_star_and_baggage_without_a_trace(monkeypatch):
    span, seen = _invoke(_api_gateway({"baggage": "color=blue"}), monkeypatch, DD_TRACE_BAGGAGE_TAG_KEYS="*")
    assert span.attributes["baggage.color"] == "blue"
    assert seen["baggage"] == {"color": "blue"}


def test_no_baggage_no_tags(monkeypatch):
    span, seen = _invoke(_api_gateway({"x-datadog-trace-id": "123", "x-datadog-parent-id": "456"}), monkeypatch)
    assert not [k for k in span.attributes if k.startswith("baggage.")]
    assert seen["baggage"] == {} and "baggage" not in seen["headers"]


def test_sqs_record_baggage_from_its_datadog_attribute():
    """ddtrace writes baggage into the _datadog message attribute: the first record's is read."""
    carrier = {"x-datadog-trace-id": "123", "x-datadog-parent-id": "456", "baggage": "user.id=amy"}
    record = {"messageId": "m1", "body": "x", "eventSource": "aws:sqs",
              "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "attributes": {"SentTimestamp": "1"},
              "messageAttributes": {"_datadog": {"dataType": "String", "stringValue": json.dumps(carrier)}}}
    found = extract_context({"Records": [record]})
    assert found.parent is not None and found.parent.trace_id == 123
    assert found.baggage == {"user.id": "amy"}
    assert dict(otel_baggage.get_all(found.context)) == {"user.id": "amy"}


_LOADED_ON_DEMAND = r"""
import json, os, sys
import otel_dd_lambda
from opentelemetry import context as otel_context
from otel_dd_lambda.injection import get_trace_headers

class Ctx:
    function_name = "f"; aws_request_id = "r"; invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:f"
    memory_limit_in_mb = 128; client_context = None
    def get_remaining_time_in_millis(self): return 30000

seen = []
def handler(event, context):
    seen.append(("opentelemetry.baggage" in sys.modules, get_trace_headers(otel_context.get_current()).get("baggage")))
otel_dd_lambda.configure(exporter=None)
call = otel_dd_lambda.instrument_handler(handler)
event = json.load(open(sys.argv[1]))
call(event, Ctx())  # no baggage anywhere: OTel's baggage module stays unloaded
event["headers"]["baggage"] = "user.id=42"
call(event, Ctx())  # the first baggage loads it
print(json.dumps(seen))
"""


def test_otel_baggage_module_loads_with_the_first_baggage(tmp_path):
    """opentelemetry.baggage (regexes compiled at import) is not loaded to find no baggage; the
    first baggage received loads it and is injected as usual."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    env.update({"OTEL_DD_LAMBDA_EXPORT_MODE": "log", "DD_TRACE_ENABLED": "true"})
    proc = subprocess.run([sys.executable, "-c", _LOADED_ON_DEMAND, os.path.join(EVENTS, "api-gateway.json")],
                          env=env, capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [[False, None], [True, "user.id=42"]]


def test_current_items_reads_otel_baggage_once_loaded():
    context = otel_baggage.set_baggage("k", "v", Context())
    assert dict(baggage.current_items(context)) == {"k": "v"}
    assert dict(baggage.current_items(Context())) == {}
