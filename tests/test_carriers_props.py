"""Property-based: injection never changes what was already in a message, and hostile or mutated
events never raise out of extraction."""

from __future__ import annotations

import base64
import copy
import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.trace import SpanContext, TraceFlags

from otel_dd_lambda import extract_context, inject
from otel_dd_lambda.carriers import common, detect
from tests.support.samples import SAMPLES as SAMPLES_DIR

SC = SpanContext(0x6548F5B2000000001234567890ABCDEF, 0x1122334455667788, False, TraceFlags(1))
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=15,
)
attribute = st.one_of(
    st.builds(lambda v: {"DataType": "String", "StringValue": v}, st.text(min_size=1, max_size=30)),
    st.builds(lambda v: {"DataType": "Binary", "BinaryValue": v}, st.binary(min_size=1, max_size=30)),
    st.builds(lambda v: {"DataType": "Number", "StringValue": str(v)}, st.integers()),
)
attributes = st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: k != "_datadog"), attribute, max_size=11)


@SETTINGS
@given(body=st.text(max_size=300), attrs=attributes, kind=st.sampled_from(["sqs", "sns"]))
def test_message_attribute_injection_keeps_everything(body, attrs, kind):
    target = {"MessageBody" if kind == "sqs" else "Message": body, "MessageAttributes": attrs}
    before = copy.deepcopy(target)
    original_attrs = target["MessageAttributes"]
    ok = inject(target, kind, SC)
    assert original_attrs == before["MessageAttributes"]  # the caller's dict is never mutated
    if not ok:
        assert target == before
        assert len(attrs) >= 10
        return
    assert {k: v for k, v in target["MessageAttributes"].items() if k != "_datadog"} == before["MessageAttributes"]
    others = {k: v for k, v in before.items() if k != "MessageAttributes"}
    assert {k: v for k, v in target.items() if k != "MessageAttributes"} == others


def _json_texts():
    def render(obj, indent, ascii_only, trailing):
        return json.dumps(obj, indent=indent, ensure_ascii=ascii_only) + trailing

    members = st.dictionaries(st.text(max_size=8).filter(lambda k: k != "_datadog"), json_values, max_size=5)
    return st.builds(render, members,
                     st.sampled_from([None, 0, 2]), st.booleans(), st.sampled_from(["", " ", "\n"]))


@SETTINGS
@given(text=_json_texts() | st.text(max_size=50) | json_values.map(json.dumps),
       kind=st.sampled_from(["eventbridge", "kinesis", "stepfunctions"]), as_bytes=st.booleans())
def test_json_payload_injection_is_byte_for_byte(text, kind, as_bytes):
    field = {"eventbridge": "Detail", "kinesis": "Data", "stepfunctions": "input"}[kind]
    value = text.encode("utf-8") if as_bytes and kind == "kinesis" else text
    target = {field: value, "Other": "x"}
    before = copy.deepcopy(target)
    if inject(target, kind, SC):
        new = target[field]
        assert type(new) is type(value)
        old = value.decode() if isinstance(value, bytes) else value
        new_text = new.decode() if isinstance(new, bytes) else new
        end = old.rstrip().rfind("}")
        assert new_text.startswith(old[:end]) and new_text.endswith(old[end:])  # everything kept, in place
        decoded = json.loads(new_text)
        assert decoded.pop("_datadog")["x-datadog-parent-id"] == str(SC.span_id)
        assert decoded == json.loads(old)
        assert target["Other"] == "x"
    else:
        assert target == before


@SETTINGS
@given(custom=st.dictionaries(st.text(max_size=6).filter(lambda k: not k.startswith(("x-datadog", "trace"))),
                              st.text(max_size=10), max_size=4),
       extra=st.dictionaries(st.sampled_from(["client", "env"]),
                             st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)))
def test_lambda_client_context_keeps_user_data(custom, extra):
    context = dict(extra, custom=custom)
    raw = base64.b64encode(json.dumps(context).encode()).decode()
    target = {"FunctionName": "f", "ClientContext": raw}
    assert inject(target, "lambda", SC)
    decoded = json.loads(base64.b64decode(target["ClientContext"]))
    assert {k: v for k, v in decoded["custom"].items() if k in custom} == custom
    assert {k: v for k, v in decoded.items() if k != "custom"} == extra


def test_limits_leave_target_untouched():
    big = "x" * (256 * 1024 - 10)
    for kind, target in [
        ("sqs", {"MessageBody": big}),
        ("sns", {"Message": big}),
        ("eventbridge", {"Detail": json.dumps({"a": big}), "Source": "s", "DetailType": "d"}),
        ("kinesis", {"Data": json.dumps({"a": "y" * (1024 * 1024 - 20)}).encode(), "PartitionKey": "p"}),
        ("eventbridge", {"Detail": "[1, 2]"}),
        ("kinesis", {"Data": b"\x00\x01binary"}),
        ("lambda", {"ClientContext": base64.b64encode(json.dumps({"custom": {"k": "v" * 2600}}).encode()).decode()}),
        ("lambda", {"ClientContext": "not base64!"}),
    ]:
        before = copy.deepcopy(target)
        assert inject(target, kind, SC) is False, kind
        assert target == before, kind


# ---------------------------------------------------------------- hostile events

SAMPLES = [json.loads(p.read_text()) for p in sorted(SAMPLES_DIR.rglob("*.json")) if p.name != "manifest.json"]
junk = st.one_of(json_values, st.text(max_size=2000), st.binary(max_size=50), st.just("x" * 100_000),
                 st.just("eyJfZGF0YWRvZyI6"), st.just(float("nan")), st.just(10**40), st.just(-1))


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _touch(result):
    result.trigger_tags, result.event_time_ns, result.context, list(result.links)


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, len(SAMPLES) - 1), seed=st.integers(0, 2**32), value=junk, mutations=st.integers(1, 4))
def test_mutated_samples_never_raise(index, seed, value, mutations):
    event = copy.deepcopy(SAMPLES[index])
    rng = random.Random(seed)
    for _ in range(mutations):
        paths = [p for p in _paths(event) if p]
        if not paths:
            break
        path = rng.choice(paths)
        holder = event
        for key in path[:-1]:
            holder = holder[key]
        action = rng.random()
        if action < 0.6:
            holder[path[-1]] = copy.deepcopy(value)  # a fresh copy: never a cycle
        elif action < 0.8 and isinstance(holder, dict):
            del holder[path[-1]]
        elif isinstance(holder[path[-1]], str):
            holder[path[-1]] = holder[path[-1]][: rng.randint(0, len(holder[path[-1]]))]  # truncated
    _touch(extract_context(event))


@settings(max_examples=150, deadline=None)
@given(event=json_values | st.builds(lambda r: {"Records": r}, st.lists(json_values, max_size=3))
       | st.builds(lambda h: {"headers": h, "requestContext": {"stage": "x"}}, json_values))
def test_arbitrary_events_never_raise(event):
    _touch(extract_context(event))


def _json_loads_object(raw: Any) -> Any:
    try:
        value = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    return value if type(value) is dict else None


json_texts = st.one_of(
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4).map(json.dumps),
    st.text(max_size=40).map(lambda s: "{" + s),
    st.text(max_size=40),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3).map(lambda d: json.dumps(d) + " \n\t"),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_texts, json_texts.map(lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=40)))
def test_loads_object_agrees_with_json_loads(raw: Any) -> None:
    # loads_object scans "{...}" with json's own scanner, skipping json.loads's Python layers.
    assert common.loads_object(raw) == _json_loads_object(raw)


def _b64_variants(data: bytes) -> Any:
    text = base64.b64encode(data).decode()
    return st.sampled_from([text, text + "=", "=" + text, text.rstrip("="), text + "AAAA", text[:-1] + "!", text + "\n",
                            text.replace("A", "-"), data, bytearray(data), ""])


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_texts.map(lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=40),
                 st.sampled_from([b"{\0}", b"{", b"{}", b"{} x", b"\xef\xbb\xbf{}"])).flatmap(_b64_variants)
       | st.one_of(st.none(), st.integers(), st.text(max_size=12), st.just("e30=" * 5000)))
def test_b64_object_is_loads_object_of_b64_bytes(raw: Any) -> None:
    # b64_object fuses the two layers (SNS / SQS Binary attributes, authorizers): same answers.
    assert common.b64_object(raw) == common.loads_object(common.b64_bytes(raw))


_CTX_VALUES = st.one_of(st.none(), st.just(""), st.just("x"), st.just({}), st.just({"x": 1}))
request_contexts = st.fixed_dictionaries({}, optional={
    "elb": _CTX_VALUES, "stage": _CTX_VALUES, "messageDirection": _CTX_VALUES,
    "domainName": st.sampled_from(["abc.lambda-url.us-east-1.on.aws", "abc.lambda-url", "lambda-url.x.y",
                                   "x.execute-api.us-east-1.amazonaws.com", "lambda-url", 5])})
http_like_events = st.fixed_dictionaries({}, optional={
    "requestContext": st.one_of(request_contexts, _CTX_VALUES), "routeKey": _CTX_VALUES,
    "request": st.one_of(st.just({"headers": {}}), _CTX_VALUES), "headers": _CTX_VALUES})


@settings(max_examples=300, deadline=None)
@given(http_like_events, st.sampled_from(["Records", "detail", "source", "detail-type", "awslogs"]))
def test_detect_skips_the_early_checks_only_when_they_cannot_match(event, early_key) -> None:
    # An event without any key the early checks read goes straight to the HTTP/AppSync checks;
    # with one such key present but empty, the full chain runs: the same trigger either way.
    assert detect.detect(event) == detect.detect({**event, early_key: None})
