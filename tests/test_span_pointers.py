"""Span pointers (S3 objects, DynamoDB items) checked against Datadog's own code and real services.

- Differential (hypothesis): our hashes equal ddtrace's botocore span-pointer functions for
  generated buckets, keys (unicode, spaces, ``+``, ``%``), etags (quoted or not) and DynamoDB keys
  of every key type, on every supported operation; the two deliberate differences (S3 event keys
  are URL-decoded; DynamoDB ``B`` values are hashed as bytes on both sides) are checked to make
  producer and consumer join where the reference does not.
- The sample events give what ``datadog_lambda.span_pointers.calculate_span_pointers`` gives
  (run in a subprocess: importing datadog_lambda patches things), except for the key decoding.
- The wire: a pointer link reaches the real ddapm-test-agent in the very shape ddtrace encodes.
- End to end: boto3 PutObject (our botocore hook) on a moto server, which sends the S3
  notification to SQS; that notification, handled by a wrapped handler, reaches the test agent
  with the upstream pointer whose hash is the PutObject span's downstream one.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from typing import Any, Dict, List, Optional
from urllib.parse import quote_plus

import msgpack
import pytest
from ddtrace._trace._span_pointer import _SpanPointerDirection
from ddtrace._trace.utils_botocore.span_pointers import extract_span_pointers_from_successful_botocore_response
from ddtrace._trace.utils_botocore.span_pointers.dynamodb import _aws_dynamodb_item_span_pointer_description
from ddtrace._trace.utils_botocore.span_pointers.s3 import _aws_s3_object_span_pointer_description
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_dd_lambda import span_pointers as sp
from otel_dd_lambda.botocore_hook import install_botocore_hook, uninstall_botocore_hook
from otel_dd_lambda.exporters.datadog import DatadogSpanExporter
from otel_dd_lambda.runtime import cold_start
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.moto_server import REGION, client
from tests.support.wrapper import FakeContext, pipeline, sample

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ours(pointers: List[sp.SpanPointer]) -> List[tuple]:
    return [(p.kind, p.direction, p.hash) for p in pointers]


def theirs(descriptions: List[Any]) -> List[tuple]:
    return [(d.pointer_kind, d.pointer_direction.value, d.pointer_hash) for d in descriptions]


def reference_call(service: str, operation: str, params: Dict[str, Any], response: Dict[str, Any],
                   key_names: Optional[Dict[str, set]] = None) -> List[tuple]:
    return theirs(extract_span_pointers_from_successful_botocore_response(
        key_names or {}, service, operation, copy.deepcopy(params), copy.deepcopy(response)))


# ---------------------------------------------------------------- strategies

buckets = st.from_regex(r"[a-z0-9][a-z0-9.\-]{1,40}[a-z0-9]", fullmatch=True)
# any text (hypothesis leaves out surrogates), with S3's troublesome characters mixed in
# S3 keys are UTF-8: any character but a lone surrogate
keys = st.text(alphabet=st.one_of(st.sampled_from(" +%/&=?~#\u00e9\u4f60"), st.characters(blacklist_categories=("Cs",))),
               min_size=1, max_size=40)
hex_etags = st.builds(
    lambda digest, parts: digest + ("-%d" % parts if parts else ""),
    st.from_regex(r"[0-9a-f]{32}", fullmatch=True), st.one_of(st.none(), st.integers(1, 10_000)))
etags = st.builds(lambda etag, quoted: '"%s"' % etag if quoted else etag, hex_etags, st.booleans())
names = st.text(min_size=1, max_size=12)
s_values = st.text(min_size=1, max_size=30).map(lambda v: {"S": v})
n_values = st.one_of(st.integers(-10**20, 10**20).map(str),
                     st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str)).map(lambda v: {"N": v})
b_values = st.binary(min_size=1, max_size=30).map(lambda v: {"B": v})
typed_values = st.one_of(s_values, n_values, b_values)
tables = st.from_regex(r"[A-Za-z0-9_.\-]{3,40}", fullmatch=True)


@st.composite
def primary_keys(draw: Any, values: Any = typed_values) -> Dict[str, Any]:
    count = draw(st.integers(1, 2))
    attribute_names = draw(st.lists(names, min_size=count, max_size=count, unique=True))
    return {name: draw(values) for name in attribute_names}


def has_binary(key: Dict[str, Any]) -> bool:
    return any("B" in value for value in key.values())


def stream_keys(key: Dict[str, Any]) -> Dict[str, Any]:
    """A key as a DynamoDB stream record in a Lambda event carries it (binary as base64 text)."""
    return {name: ({"B": base64.b64encode(v["B"]).decode()} if "B" in v else v) for name, v in key.items()}


def stream_record(table: str, key: Dict[str, Any], event_name: str = "INSERT") -> Dict[str, Any]:
    return {
        "eventName": event_name, "eventSource": "aws:dynamodb", "awsRegion": REGION,
        "eventSourceARN": "arn:aws:dynamodb:%s:123456789012:table/%s/stream/2024-06-10T19:26:16.525" % (REGION, table),
        "dynamodb": {"Keys": stream_keys(key), "SizeBytes": 10, "StreamViewType": "KEYS_ONLY"},
    }


def s3_record(bucket: str, encoded_key: str, etag: str, event_name: str = "ObjectCreated:Put") -> Dict[str, Any]:
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION, "eventName": event_name,
        "eventTime": "2024-06-10T19:26:16.525Z",
        "s3": {"bucket": {"name": bucket, "arn": "arn:aws:s3:::" + bucket},
               "object": {"key": encoded_key, "size": 3, "eTag": etag}},
    }


# ---------------------------------------------------------------- S3: differential


@HYPO
@given(bucket=buckets, key=keys, etag=etags)
def test_s3_writes_hash_as_ddtrace(bucket: str, key: str, etag: str) -> None:
    params = {"Bucket": bucket, "Key": key, "Body": b"x"}
    for operation, response in (("PutObject", {"ETag": etag}), ("CompleteMultipartUpload", {"ETag": etag}),
                                ("CopyObject", {"CopyObjectResult": {"ETag": etag}})):
        got = ours(sp.pointers_for_call("s3", operation, params, response))
        assert got == reference_call("s3", operation, params, response)
        assert len(got) == 1 and got[0][:2] == ("aws.s3.object", "d")


@HYPO
@given(bucket=buckets, key=keys, etag=hex_etags, event_name=st.sampled_from(
    ["ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload"]))
def test_s3_event_joins_the_put_of_the_same_object(bucket: str, key: str, etag: str, event_name: str) -> None:
    encoded = quote_plus(key, safe="/")  # how S3 writes keys into notifications
    event = {"Records": [s3_record(bucket, encoded, etag, event_name)]}
    (pointer,) = sp.pointers_for_event(event)
    (produced,) = reference_call("s3", "PutObject", {"Bucket": bucket, "Key": key}, {"ETag": '"%s"' % etag})
    assert (pointer.kind, pointer.hash) == (produced[0], produced[2]) and pointer.direction == "u"
    # datadog_lambda's consumer side hashes the encoded key: the same only when encoding changed nothing
    reference = _aws_s3_object_span_pointer_description(
        operation="S3.LambdaEvent", pointer_direction=_SpanPointerDirection.UPSTREAM,
        bucket=bucket, key=encoded, etag=etag)
    assert (reference.pointer_hash == pointer.hash) == (encoded == key)


def test_s3_events_other_than_creation_and_bad_fields_give_no_pointer() -> None:
    good = s3_record("bkt", "k", "0123")
    assert len(sp.pointers_for_event({"Records": [good]})) == 1
    removed = dict(good, eventName="ObjectRemoved:Delete")
    no_name = {k: v for k, v in good.items() if k != "eventName"}
    quoted_inside = copy.deepcopy(good)
    quoted_inside["s3"]["object"]["eTag"] = 'ab"cd'
    non_ascii_bucket = copy.deepcopy(good)
    non_ascii_bucket["s3"]["bucket"]["name"] = "b\u00e9"
    bad = [removed, no_name, quoted_inside, non_ascii_bucket, {"s3": None, "eventName": "ObjectCreated:Put"}, 7]
    assert sp.pointers_for_event({"Records": bad}, "s3") == []
    # one bad record does not cost the others their pointers (datadog_lambda drops the batch)
    assert len(sp.pointers_for_event({"Records": bad + [good]}, "s3")) == 1
    for event in (None, [], {"Records": "x"}, {"Records": []}, {"Records": [good]} | {"x": 1}):
        assert isinstance(sp.pointers_for_event(event, "dynamodb"), list)


# ---------------------------------------------------------------- DynamoDB: differential


@HYPO
@given(table=tables, key=primary_keys())
def test_dynamodb_keyed_writes_hash_as_ddtrace(table: str, key: Dict[str, Any]) -> None:
    calls = [
        ("UpdateItem", {"TableName": table, "Key": key, "UpdateExpression": "SET x = :v"}, {}),
        ("DeleteItem", {"TableName": table, "Key": key}, {}),
        ("BatchWriteItem", {"RequestItems": {table: [{"DeleteRequest": {"Key": key}}]}}, {"UnprocessedItems": {}}),
        ("TransactWriteItems", {"TransactItems": [
            {"Update": {"TableName": table, "Key": key, "UpdateExpression": "SET x = :v"}},
            {"Delete": {"TableName": table, "Key": key}},
            {"ConditionCheck": {"TableName": table, "Key": key, "ConditionExpression": "x"}}]}, {}),
    ]
    for operation, params, response in calls:
        got = ours(sp.pointers_for_call("dynamodb", operation, params, response))
        assert got == reference_call("dynamodb", operation, params, response), operation
        assert got and all(p[:2] == ("aws.dynamodb.item", "d") for p in got)


@HYPO
@given(table=tables, key=primary_keys(), extra=s_values)
def test_dynamodb_puts_hash_as_ddtrace_and_as_the_keyed_writes(table: str, key: Dict[str, Any],
                                                              extra: Dict[str, Any]) -> None:
    item = dict(key, **{"\x00not-a-key": extra})
    key_names = {table: frozenset(key)}
    calls = [
        ("PutItem", {"TableName": table, "Item": item}, {}),
        ("BatchWriteItem", {"RequestItems": {table: [{"PutRequest": {"Item": item}}]}}, {}),
        ("TransactWriteItems", {"TransactItems": [{"Put": {"TableName": table, "Item": item}}]}, {}),
    ]
    (keyed,) = ours(sp.pointers_for_call("dynamodb", "DeleteItem", {"TableName": table, "Key": key}, {}))
    for operation, params, response in calls:
        got = ours(sp.pointers_for_call("dynamodb", operation, params, response, key_names))
        assert got == [keyed]  # the item's key found through the configured names
        reference = reference_call("dynamodb", operation, params, response, {table: set(key)})
        # ddtrace only reads text values from an item, so a B key gets no pointer there
        assert reference == ([] if has_binary(key) else got), operation
        # without the table's key names there is nothing to hash
        assert sp.pointers_for_call("dynamodb", operation, params, response, {}) == []


@HYPO
@given(table=tables, keys_=st.lists(primary_keys(st.one_of(s_values, n_values)), min_size=2, max_size=4),
       unprocessed=st.data())
def test_dynamodb_batch_write_leaves_out_unprocessed_items(table: str, keys_: List[Dict[str, Any]],
                                                           unprocessed: Any) -> None:
    writes = [{"DeleteRequest": {"Key": key}} for key in keys_]
    left = unprocessed.draw(st.lists(st.sampled_from(writes), max_size=len(writes), unique_by=id))
    params = {"RequestItems": {table: writes}}
    response = {"UnprocessedItems": {table: left} if left else {}}
    got = ours(sp.pointers_for_call("dynamodb", "BatchWriteItem", params, response))
    assert got == reference_call("dynamodb", "BatchWriteItem", params, response)


def test_dynamodb_resource_api_values_hash_as_ddtrace() -> None:
    # boto3's Table API passes Python values; ddtrace runs them through boto3's TypeSerializer
    for key in ({"id": "abc"}, {"id": 42}, {"id": Decimal("1.50"), "sort": "x"}, {"pk": "a", "sk": 7}):
        params = {"TableName": "tbl", "Key": key}
        got = ours(sp.pointers_for_call("dynamodb", "DeleteItem", params, {}))
        assert got and got == reference_call("dynamodb", "DeleteItem", params, {})
    for bad in ({"id": 1.5}, {"id": None}, {"id": {"S": "a", "N": "1"}}, {}, {"a": "1", "b": "2", "c": "3"}):
        assert sp.pointers_for_call("dynamodb", "DeleteItem", {"TableName": "tbl", "Key": bad}, {}) == []


@HYPO
@given(table=tables, key=primary_keys())
def test_dynamodb_stream_record_joins_the_write_of_the_same_item(table: str, key: Dict[str, Any]) -> None:
    records = [stream_record(table, key, name) for name in ("INSERT", "MODIFY", "REMOVE")]
    pointers = sp.pointers_for_event({"Records": records})
    assert len(pointers) == 3 and all(p.direction == "u" for p in pointers)
    (written,) = reference_call("dynamodb", "DeleteItem", {"TableName": table, "Key": key}, {})
    assert {(p.kind, p.hash) for p in pointers} == {(written[0], written[2])}
    # what datadog_lambda computes from the record: the same unless a B value is base64 text there
    reference = _aws_dynamodb_item_span_pointer_description(
        operation="DynamoDB.LambdaEvent", pointer_direction=_SpanPointerDirection.UPSTREAM,
        table_name=table, primary_key=stream_keys(key))
    assert (reference.pointer_hash == pointers[0].hash) == (not has_binary(key))


def test_dynamodb_bad_stream_records_give_no_pointer() -> None:
    good = stream_record("tbl", {"id": {"S": "a"}})
    bad_arns = ["arn:aws:kinesis:us-east-1:1:stream/x", "arn:aws:dynamodb:us-east-1:1:table/tbl", "nope", 5,
                "arn:aws:dynamodb:us-east-1:1:table/tbl/stream/a/extra"]
    bad = [dict(good, eventSourceARN=arn) for arn in bad_arns]
    bad.append(dict(good, dynamodb={"Keys": {"id": {"B": "not base64!"}}}))
    bad.append(dict(good, dynamodb={"Keys": {"a": {"S": "1"}, "b": {"S": "2"}, "c": {"S": "3"}}}))
    bad.append(dict(good, dynamodb={"Keys": {"id": {"BOOL": True}}}))
    bad.append(dict(good, dynamodb=None))
    assert sp.pointers_for_event({"Records": bad}, "dynamodb") == []
    assert len(sp.pointers_for_event({"Records": bad + [good]}, "dynamodb")) == 1


def test_primary_key_setting_is_parsed_as_ddtrace_reads_it() -> None:
    assert sp.parse_primary_keys('{"t1": ["a"], "t2": ["a", "b"]}') == {"t1": {"a"}, "t2": {"a", "b"}}
    for bad in ('{"t": "a"}', '{"t": ["a", "a"]}', "[1]", "not json", '{"t": [1]}'):
        assert sp.parse_primary_keys(bad) == {}
    assert sp.parse_primary_keys(None) == {}


# ---------------------------------------------------------------- the sample events vs datadog_lambda

_REFERENCE = r"""
import json, sys
from datadog_lambda.span_pointers import calculate_span_pointers
from datadog_lambda.trigger import parse_event_source
out = []
for event in json.load(sys.stdin):
    out.append([[d.pointer_kind, d.pointer_direction.value, d.pointer_hash]
                for d in calculate_span_pointers(parse_event_source(event), event, True)])
print(json.dumps(out))
"""


def reference_event_pointers(events: List[Any]) -> List[List[tuple]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "_X_AMZN", "OTEL_"))}
    env["DD_INSTRUMENTATION_TELEMETRY_ENABLED"] = "false"
    done = subprocess.run([sys.executable, "-c", _REFERENCE], input=json.dumps(events), capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return [[tuple(p) for p in pointers] for pointers in json.loads(done.stdout.strip().splitlines()[-1])]


def test_sample_events_give_datadog_lambdas_pointers_except_for_key_decoding() -> None:
    names = ["s3.json", "dynamodb.json", "integration/s3.json", "integration/dynamodb.json"]
    events = [sample(name) for name in names]
    encoded = copy.deepcopy(events[0])
    encoded["Records"][0]["s3"]["object"]["key"] = "dir/my+report%2B%C3%A9+%25.txt"
    decoded = copy.deepcopy(encoded)
    decoded["Records"][0]["s3"]["object"]["key"] = "dir/my report+\u00e9 %.txt"
    reference = reference_event_pointers(events + [encoded, decoded])
    assert all(reference[:4]) and len(reference[1]) == 3
    for name, event, expected in zip(names, events, reference):
        assert ours(sp.pointers_for_event(event)) == expected, name
    # the one deliberate difference: the event's key is decoded before hashing
    assert ours(sp.pointers_for_event(encoded)) == reference[5] != reference[4]


def test_pointers_are_off_with_dd_botocore_add_span_pointers_false(monkeypatch: pytest.MonkeyPatch) -> None:
    event = sample("s3.json")
    assert len(sp.event_links(event, "s3")) == 1
    monkeypatch.setenv("DD_BOTOCORE_ADD_SPAN_POINTERS", "false")
    assert sp.event_links(event, "s3") == []
    assert sp.event_links(sample("sqs-batch.json"), "sqs") == []


# ---------------------------------------------------------------- the wire and end to end


def ddtrace_encoded_pointer_link(kind: str, direction: str, digest: str) -> Dict[str, Any]:
    """The link as ddtrace's own v0.4 encoder writes a span pointer."""
    from ddtrace._trace.span import Span
    from ddtrace.internal._encoding import MsgpackEncoderV04

    span = Span("x")
    span._add_span_pointer(kind, _SpanPointerDirection(direction), digest)
    span.finish()
    encoder = MsgpackEncoderV04(1 << 20, 1 << 20)
    encoder.put([span])
    (link,) = msgpack.unpackb(encoder.encode()[0][0])[0][0]["span_links"]
    return link


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DD_BOTOCORE_ADD_SPAN_POINTERS", "DD_BOTOCORE_DYNAMODB_TABLE_PRIMARY_KEYS", "_X_AMZN_TRACE_ID",
                 "DD_TRACE_MANAGED_SERVICES", "DD_COLD_START_TRACING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DD_COLD_START_TRACING", "false")
    cold_start._reset_for_tests()


def run_wrapped(agent: Any, event: Any) -> List[Dict[str, Any]]:
    token = "otel-dd-pointers-%s" % uuid.uuid4().hex
    agent.start_session(token)
    exporter = DatadogSpanExporter(agent.url, mode="agent", headers={"X-Datadog-Test-Session-Token": token})
    provider, _ = pipeline(exporter)
    result = object()
    handler = instrument_handler(lambda e, c: result, tracer_provider=provider)
    assert handler(event, FakeContext()) is result
    managed = os.environ.get("DD_TRACE_MANAGED_SERVICES") != "false"
    traces = agent.wait_for_traces(token, 2 if managed else 1)
    agent.clear(token)
    return [span for chunk in traces for span in chunk]


def recent(event: Any) -> Any:
    """The sample with a delivery time of now (older ones get no inferred span)."""
    event = copy.deepcopy(event)
    for record in event["Records"]:
        if "eventTime" in record:
            record["eventTime"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        if "ApproximateCreationDateTime" in record.get("dynamodb", {}):
            record["dynamodb"]["ApproximateCreationDateTime"] = int(time.time())
    return event


def test_s3_triggered_invocation_sends_the_pointer_as_ddtrace_encodes_it(agent: Any, monkeypatch: Any) -> None:
    event = recent(sample("s3.json"))
    (expected,) = sp.pointers_for_event(event)
    wire = ddtrace_encoded_pointer_link(*expected)
    # with an inferred span (the default), the pointer is on it, as datadog_lambda puts it there
    spans = {s["name"]: s for s in run_wrapped(agent, event)}
    assert set(spans) == {"aws.s3", "aws.lambda"}
    assert spans["aws.s3"]["span_links"] == [wire]
    assert not spans["aws.lambda"].get("span_links")
    monkeypatch.setenv("DD_TRACE_MANAGED_SERVICES", "false")
    (span,) = run_wrapped(agent, event)
    assert span["name"] == "aws.lambda" and span["span_links"] == [wire]
    monkeypatch.setenv("DD_BOTOCORE_ADD_SPAN_POINTERS", "false")
    (span,) = run_wrapped(agent, event)
    assert not span.get("span_links")


def test_dynamodb_stream_invocation_sends_one_pointer_per_record(agent: Any) -> None:
    event = recent(sample("dynamodb.json"))
    spans = {s["name"]: s for s in run_wrapped(agent, event)}
    links = spans["aws.dynamodb"]["span_links"]
    assert links == [ddtrace_encoded_pointer_link(*p) for p in sp.pointers_for_event(event)] and len(links) == 3


def traced_provider() -> tuple:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def pointer_links(span: Any) -> List[Dict[str, str]]:
    return [dict(link.attributes) for link in span.links if link.attributes.get("link.kind") == "span-pointer"]


def test_put_object_through_boto3_joins_the_notification_moto_sends(agent: Any, endpoint: str) -> None:
    s3, sqs = client(endpoint, "s3"), client(endpoint, "sqs")
    install_botocore_hook(s3)
    try:
        bucket = "bkt-" + uuid.uuid4().hex[:10]
        s3.create_bucket(Bucket=bucket)
        queue = sqs.create_queue(QueueName="q-" + uuid.uuid4().hex[:8])["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
        key = "dir/my report+\u00e9 100%.txt"
        tracer, spans = traced_provider()
        with tracer.start_as_current_span("writer") as writer:
            answer = s3.put_object(Bucket=bucket, Key=key, Body=b"hello")
            s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # a read: no pointer
        (produced,) = pointer_links(spans.get_finished_spans()[0])
        assert writer.links[0].context.trace_id == 0 and writer.links[0].context.span_id == 0
        (expected,) = reference_call("s3", "PutObject", {"Bucket": bucket, "Key": key}, answer)
        assert produced == {"link.kind": "span-pointer", "ptr.kind": "aws.s3.object", "ptr.dir": "d",
                            "ptr.hash": expected[2]}
        messages: List[Any] = []
        for _ in range(20):
            messages += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            if any("ObjectCreated" in m["Body"] for m in messages):
                break
        (notification,) = [json.loads(m["Body"]) for m in messages if "ObjectCreated" in m["Body"]]
        assert notification["Records"][0]["s3"]["object"]["key"] != key  # URL-encoded by S3 (moto)
        sent = {s["name"]: s for s in run_wrapped(agent, notification)}
        (consumed,) = sent["aws.s3"]["span_links"]
        assert consumed["attributes"]["ptr.dir"] == "u"
        assert consumed["attributes"]["ptr.hash"] == produced["ptr.hash"]
    finally:
        uninstall_botocore_hook()


def test_dynamodb_writes_through_boto3_get_pointers(endpoint: str, monkeypatch: Any) -> None:
    ddb = client(endpoint, "dynamodb")
    install_botocore_hook(ddb)
    try:
        table = "tbl-" + uuid.uuid4().hex[:8]
        ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "B"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}])
        key = {"pk": {"S": "user \u00e9"}, "sk": {"B": b"\x00\xff"}}
        item = dict(key, payload={"S": "x"})
        (expected,) = reference_call("dynamodb", "DeleteItem", {"TableName": table, "Key": key}, {})
        tracer, spans = traced_provider()
        with tracer.start_as_current_span("no-key-names"):
            ddb.put_item(TableName=table, Item=item)  # the table's key names are not configured
        monkeypatch.setenv("DD_BOTOCORE_DYNAMODB_TABLE_PRIMARY_KEYS", json.dumps({table: ["pk", "sk"]}))
        with tracer.start_as_current_span("writes"):
            ddb.put_item(TableName=table, Item=item)
            ddb.update_item(TableName=table, Key=key, UpdateExpression="SET payload = :v",
                            ExpressionAttributeValues={":v": {"S": "y"}})
            ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": item}}]})
            ddb.transact_write_items(TransactItems=[{"Update": {
                "TableName": table, "Key": key, "UpdateExpression": "SET payload = :v",
                "ExpressionAttributeValues": {":v": {"S": "z"}}}}])
            ddb.delete_item(TableName=table, Key=key)
            ddb.get_item(TableName=table, Key=key)  # a read: no pointer
        unconfigured, writes = spans.get_finished_spans()
        assert pointer_links(unconfigured) == []
        hashes = [link["ptr.hash"] for link in pointer_links(writes)]
        assert hashes == [expected[2]] * 5
        # the stream record of that item, as Lambda delivers it (B as base64), points at the same hash
        (consumed,) = sp.pointers_for_event({"Records": [stream_record(table, key)]})
        assert consumed.hash == expected[2]
        monkeypatch.setenv("DD_BOTOCORE_ADD_SPAN_POINTERS", "false")
        with tracer.start_as_current_span("off"):
            ddb.delete_item(TableName=table, Key=key)
        assert pointer_links(spans.get_finished_spans()[-1]) == []
    finally:
        uninstall_botocore_hook()


def test_with_otels_botocore_instrumentation_the_pointer_is_on_its_client_span(endpoint: str) -> None:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    instrumentor = BotocoreInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        s3 = client(endpoint, "s3")
        install_botocore_hook(s3)
        bucket = "bkt-" + uuid.uuid4().hex[:10]
        s3.create_bucket(Bucket=bucket)
        with tracer.start_as_current_span("caller"):
            answer = s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    finally:
        instrumentor.uninstrument()
        uninstall_botocore_hook()
    by_name = {span.name: span for span in spans.get_finished_spans()}
    (expected,) = reference_call("s3", "PutObject", {"Bucket": bucket, "Key": "k"}, answer)
    assert [link["ptr.hash"] for link in pointer_links(by_name["S3.PutObject"])] == [expected[2]]
    assert pointer_links(by_name["caller"]) == []
