"""Real round trips: boto3 (with our botocore hook) → moto server → the event as Lambda delivers
it → extract_context, same ids; and what we inject is read by Datadog's reference library."""

from __future__ import annotations

import base64
import json
import os
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider

from otel_dd_lambda import extract_context, ids, inject
from otel_dd_lambda.botocore_hook import install_botocore_hook, uninstall_botocore_hook
from otel_dd_lambda.injection import splice_json
from tests.support.moto_server import REGION, aws_env, client, hooked, make_queue, receive, sqs_event
from tests.support.reference import reference_extract

ACCOUNT = "123456789012"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("_X_AMZN_TRACE_ID", "DD_TRACE_EXTRACTOR", "DD_BATCH_PARENT", "DD_TRACE_PROPAGATION_STYLE",
                 "DD_TRACE_PROPAGATION_STYLE_INJECT", "DD_TRACE_PROPAGATION_STYLE_EXTRACT", "OTEL_PROPAGATORS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def tracer():
    return TracerProvider(id_generator=ids.DatadogXRayIdGenerator()).get_tracer("test")


def same(span, parent):
    sc = span.get_span_context()
    assert parent is not None
    assert (parent.trace_id, parent.span_id) == (sc.trace_id, sc.span_id)


# ---------------------------------------------------------------- SQS


def test_sqs_send_message_round_trip(endpoint, tracer):
    sqs = hooked(endpoint, "sqs")
    url, arn = make_queue(sqs)
    user_attrs = {"color": {"DataType": "String", "StringValue": "blue"}}
    with tracer.start_as_current_span("send") as span:
        sqs.send_message(QueueUrl=url, MessageBody="hello", MessageAttributes=user_attrs)
    assert user_attrs == {"color": {"DataType": "String", "StringValue": "blue"}}  # caller's dict untouched
    (message,) = receive(sqs, url)
    assert message["Body"] == "hello" and message["MessageAttributes"]["color"]["StringValue"] == "blue"
    event = sqs_event([message], arn)
    result = extract_context(event)
    same(span, result.parent)
    assert result.trigger == "sqs" and result.links[0].attributes["messaging.message.id"] == message["MessageId"]
    ref = reference_extract([event])[0]
    sc = span.get_span_context()
    # ddtrace joins `_dd.p.tid` and the low 64 bits into one 128-bit id: all of ours arrives.
    assert ref["trace_id"] == sc.trace_id and ref["span_id"] == sc.span_id


def test_sqs_send_message_batch_every_entry(endpoint, tracer):
    sqs = hooked(endpoint, "sqs")
    url, arn = make_queue(sqs)
    with tracer.start_as_current_span("send") as span:
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "m%d" % i} for i in range(3)])
    messages = receive(sqs, url, 3)
    assert all("_datadog" in m["MessageAttributes"] for m in messages)
    result = extract_context(sqs_event(messages, arn))
    same(span, result.parent)
    assert len(result.links) == 3


def test_sqs_ten_attributes_left_alone(endpoint, tracer):
    sqs = hooked(endpoint, "sqs")
    url, arn = make_queue(sqs)
    attrs = {"a%d" % i: {"DataType": "String", "StringValue": str(i)} for i in range(10)}
    with tracer.start_as_current_span("send"):
        sqs.send_message(QueueUrl=url, MessageBody="full", MessageAttributes=attrs)
    (message,) = receive(sqs, url)
    assert set(message["MessageAttributes"]) == set(attrs)


# ---------------------------------------------------------------- SNS → SQS


@pytest.mark.parametrize("raw", [False, True])
def test_sns_to_sqs_round_trip(endpoint, tracer, raw):
    sns, sqs = hooked(endpoint, "sns"), client(endpoint, "sqs")
    url, queue_arn = make_queue(sqs)
    topic = sns.create_topic(Name="t-" + uuid.uuid4().hex[:8])["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"})
    attrs = {"k": {"DataType": "String", "StringValue": "v"}}
    with tracer.start_as_current_span("publish") as span:
        if raw:
            # Raw delivery copies the SNS message attributes onto the SQS message. moto 5.2.5 crashes
            # delivering a Binary attribute that way (sqs/models.py: md5 of a str), so the copy is
            # done here with exactly what the hook put in the Publish call.
            params = {"TopicArn": topic, "Message": "payload", "MessageAttributes": attrs}
            assert inject(params, "sns")
            sqs.send_message(QueueUrl=url, MessageBody=params["Message"], MessageAttributes=params["MessageAttributes"])
        else:
            sns.publish(TopicArn=topic, Message="payload", MessageAttributes=attrs)
    (message,) = receive(sqs, url)
    event = sqs_event([message], queue_arn)
    if raw:
        assert message["MessageAttributes"]["_datadog"]["DataType"] == "Binary"
        assert message["Body"] == "payload"
    else:
        body = json.loads(message["Body"])
        assert body["Type"] == "Notification" and body["MessageAttributes"]["_datadog"]["Type"] == "Binary"
    result = extract_context(event)
    same(span, result.parent)
    ref = reference_extract([event])[0]
    assert ref["span_id"] == span.get_span_context().span_id
    if not raw:
        # The same notification as a direct SNS → Lambda record (Lambda puts it under "Sns";
        # constructed: EventSource, EventSubscriptionArn).
        sns_event = {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
                                  "EventSubscriptionArn": topic + ":sub", "Sns": json.loads(message["Body"])}]}
        result = extract_context(sns_event)
        same(span, result.parent)
        assert result.trigger_tags["function_trigger.event_source_arn"] == topic
        assert reference_extract([sns_event])[0]["span_id"] == span.get_span_context().span_id


def test_sns_publish_batch(endpoint, tracer):
    sns, sqs = hooked(endpoint, "sns"), client(endpoint, "sqs")
    url, queue_arn = make_queue(sqs)
    topic = sns.create_topic(Name="t-" + uuid.uuid4().hex[:8])["TopicArn"]
    # Enveloped delivery (moto cannot deliver Binary attributes raw, see above).
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    with tracer.start_as_current_span("publish") as span:
        sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[{"Id": str(i), "Message": "m%d" % i} for i in range(2)])
    messages = receive(sqs, url, 2)
    result = extract_context(sqs_event(messages, queue_arn))
    same(span, result.parent)
    assert len(result.links) == 2


# ---------------------------------------------------------------- EventBridge → SQS


def test_eventbridge_to_sqs_round_trip(endpoint, tracer):
    events, sqs = hooked(endpoint, "events"), client(endpoint, "sqs")
    url, queue_arn = make_queue(sqs)
    rule = "r-" + uuid.uuid4().hex[:8]
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["my.app"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": queue_arn}])
    detail = '{"order": 42,  "note": "caf\\u00e9"}'
    with tracer.start_as_current_span("put") as span:
        events.put_events(Entries=[{"Source": "my.app", "DetailType": "order", "Detail": detail}])
    (message,) = receive(sqs, url)
    body = json.loads(message["Body"])
    assert body["detail"]["order"] == 42 and "_datadog" in body["detail"]
    event = sqs_event([message], queue_arn)
    same(span, extract_context(event).parent)
    assert reference_extract([event])[0]["span_id"] == span.get_span_context().span_id
    # And the same EventBridge event delivered straight to Lambda:
    same(span, extract_context(body).parent)


# ---------------------------------------------------------------- Kinesis


def test_kinesis_round_trip(endpoint, tracer):
    kinesis = hooked(endpoint, "kinesis")
    stream = "s-" + uuid.uuid4().hex[:8]
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    arn = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["StreamARN"]
    data = json.dumps({"city": "Zürich"}, ensure_ascii=False).encode()
    with tracer.start_as_current_span("put") as span:
        kinesis.put_record(StreamName=stream, Data=data, PartitionKey="p")
        kinesis.put_records(StreamName=stream, Records=[{"Data": b'{"n": 1}', "PartitionKey": "p"}, {"Data": b"not json", "PartitionKey": "p"}])
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert len(records) == 3
    assert records[0]["Data"].startswith(data[:-1]) and records[2]["Data"] == b"not json"
    # Constructed: the Lambda record envelope (kinesis.data base64, eventSource, eventSourceARN).
    event = {"Records": [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": r["PartitionKey"], "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp()},
        "eventSource": "aws:kinesis", "eventID": "shardId-000000000000:" + r["SequenceNumber"], "eventVersion": "1.0",
        "eventName": "aws:kinesis:record", "awsRegion": REGION, "eventSourceARN": arn} for r in records]}
    result = extract_context(event)
    same(span, result.parent)
    assert len(result.links) == 2  # the non-JSON record carries none and was sent unchanged
    # The reference decodes data as ASCII: it cannot read the first (non-ASCII) record.
    ascii_event = {"Records": event["Records"][1:]}
    assert reference_extract([ascii_event])[0]["span_id"] == span.get_span_context().span_id


# ---------------------------------------------------------------- Step Functions, Lambda


def test_stepfunctions_start_execution_input(endpoint, tracer):
    sfn = hooked(endpoint, "stepfunctions")
    iam_role = "arn:aws:iam::%s:role/sfn" % ACCOUNT
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    machine = sfn.create_state_machine(name="m-" + uuid.uuid4().hex[:8], definition=definition, roleArn=iam_role)["stateMachineArn"]
    with tracer.start_as_current_span("start") as span:
        execution = sfn.start_execution(stateMachineArn=machine, input='{"a": [1, 2]}')["executionArn"]
    described = sfn.describe_execution(executionArn=execution)
    sent = json.loads(described["input"])
    assert sent["a"] == [1, 2] and described["input"].startswith('{"a": [1, 2]')
    # The state machine passes its input's _datadog on, as Datadog's JSONPath/JSONata setup does.
    same(span, extract_context(sent).parent)


class _Stop(Exception):
    pass


def test_lambda_invoke_client_context(endpoint, tracer):
    lam = hooked(endpoint, "lambda")
    captured = {}

    def capture(params, **kwargs):
        captured.update(params["headers"])
        raise _Stop()  # no Lambda runtime in moto without Docker: stop once the request is built

    lam.meta.events.register("before-call.lambda.Invoke", capture)
    with tracer.start_as_current_span("invoke") as span:
        with pytest.raises(_Stop):
            lam.invoke(FunctionName="f", Payload=b"{}")
    client_context = json.loads(base64.b64decode(captured["X-Amz-Client-Context"]))

    class ClientContext:
        custom = client_context["custom"]

    class Ctx:
        client_context = ClientContext()
        invoked_function_arn = "arn:aws:lambda:us-east-1:%s:function:f" % ACCOUNT

    result = extract_context({}, Ctx())
    same(span, result.parent)
    assert result.source == "client_context"
    ref = reference_extract([{}], [client_context["custom"]])[0]
    assert ref["span_id"] == span.get_span_context().span_id


# ---------------------------------------------------------------- hook lifecycle, OTel botocore


def test_hook_is_idempotent_and_removable(endpoint, tracer):
    sqs = client(endpoint, "sqs")
    url, _ = make_queue(sqs)
    install_botocore_hook()
    install_botocore_hook()
    try:
        global_client = client(endpoint, "sqs")
        install_botocore_hook(global_client)  # and once more on the client itself
        with tracer.start_as_current_span("send"):
            global_client.send_message(QueueUrl=url, MessageBody="x")
    finally:
        uninstall_botocore_hook()
    (message,) = receive(sqs, url)
    assert list(message["MessageAttributes"]) == ["_datadog"]
    after = client(endpoint, "sqs")
    with tracer.start_as_current_span("send"):
        after.send_message(QueueUrl=url, MessageBody="y")
        global_client.send_message(QueueUrl=url, MessageBody="z")
    assert all("MessageAttributes" not in m for m in receive(sqs, url, 2))


def test_beside_opentelemetry_instrumentation_botocore(endpoint, tracer):
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

    provider = TracerProvider(id_generator=ids.DatadogXRayIdGenerator())
    instrumentor = BotocoreInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        sqs = hooked(endpoint, "sqs")
        url, arn = make_queue(sqs)
        with tracer.start_as_current_span("caller") as span:
            sqs.send_message(QueueUrl=url, MessageBody="one")
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "two"}])
    finally:
        instrumentor.uninstrument()
    messages = receive(sqs, url, 2)
    for m in messages:
        assert list(m["MessageAttributes"]).count("_datadog") == 1
        dd = json.loads(m["MessageAttributes"]["_datadog"]["StringValue"])
        assert dd["x-datadog-trace-id"] == str(span.get_span_context().trace_id & ids.LOW64_MASK)
    # The OTel client span is the active span during the call, so it is the parent: same trace.
    result = extract_context(sqs_event(messages, arn))
    assert result.parent.trace_id == span.get_span_context().trace_id


# ---------------------------------------------------------------- every client, whenever created (issue 9.2)

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
HTTP_EVENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "events", "http-api.json")


def readme_lambda_example() -> str:
    """The README's first Lambda example, verbatim."""
    with open(README, encoding="utf-8") as handle:
        text = handle.read()
    section = text[text.index("## Use it in a Lambda function"):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("```", start)]


def run_lambda(code, cwd, env):
    import subprocess
    import sys

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    full_env.update({"AWS_LAMBDA_FUNCTION_NAME": "my-fn", "DD_FLUSH_TO_LOG": "true"}, **env)
    full_env["PYTHONPATH"] = os.pathsep.join([str(cwd), os.getcwd()])
    proc = subprocess.run([sys.executable, "-c", code], env=full_env, cwd=str(cwd), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    spans = [s for line in proc.stdout.splitlines() if line.startswith('{"traces"')
             for trace in json.loads(line)["traces"] for s in trace]
    (invocation,) = [s for s in spans if s["name"] == "aws.lambda"]
    return invocation


INVOKE = """
import json
%s
class Ctx:
    aws_request_id = "r1"; invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:my-fn"
    client_context = None
    def get_remaining_time_in_millis(self): return 10000
with open(%r) as f:
    event = json.load(f)
print(json.dumps(handler(event, Ctx())))
"""


def assert_carries_invocation(message, invocation):
    dd = json.loads(message["MessageAttributes"]["_datadog"]["StringValue"])
    with open(HTTP_EVENT) as handle:
        incoming = {k.lower(): v for k, v in json.load(handle)["headers"].items()}
    # The log format writes ids in hex.
    assert dd["x-datadog-trace-id"] == str(int(invocation["trace_id"], 16)) == incoming["x-datadog-trace-id"]
    assert dd["x-datadog-parent-id"] == str(int(invocation["span_id"], 16))  # the invocation span was current


def test_readme_example_client_created_at_module_level(endpoint, tmp_path):
    # The client exists before @instrument_handler runs configure(): it must inject all the same.
    sqs = client(endpoint, "sqs")
    url, _ = make_queue(sqs)
    (tmp_path / "app.py").write_text(readme_lambda_example())
    code = INVOKE % ("import app\nhandler = app.handler", HTTP_EVENT)
    invocation = run_lambda(code, tmp_path, dict(aws_env(endpoint), QUEUE_URL=url))
    (message,) = receive(sqs, url)
    assert message["Body"] == "hello" and list(message["MessageAttributes"]) == ["_datadog"]
    assert_carries_invocation(message, invocation)


@pytest.mark.parametrize("botocore_first", [False, True])
def test_redirect_handler_module_level_client(endpoint, tmp_path, botocore_first):
    # No code change: otel_dd_lambda.handler.handler loads app.handler after configure(); with
    # botocore imported (and a client made) before it, or only by the user's module.
    sqs = client(endpoint, "sqs")
    url, _ = make_queue(sqs)
    (tmp_path / "app.py").write_text(
        "import os\nimport boto3\n\nsqs = boto3.client('sqs')\n\n\n"
        "def handler(event, context):\n"
        "    sqs.send_message(QueueUrl=os.environ['QUEUE_URL'], MessageBody='plain')\n"
        "    early.send_message(QueueUrl=os.environ['QUEUE_URL'], MessageBody='early') if early else None\n"
        "    return 1\n\n\nearly = None\n")
    prelude = "import boto3, app\napp.early = boto3.client('sqs')\n" if botocore_first else ""
    code = INVOKE % (prelude + "from otel_dd_lambda.handler import handler", HTTP_EVENT)
    invocation = run_lambda(code, tmp_path, dict(aws_env(endpoint), QUEUE_URL=url, DD_LAMBDA_HANDLER="app.handler"))
    messages = receive(sqs, url, 2 if botocore_first else 1)
    for message in messages:
        assert list(message["MessageAttributes"]) == ["_datadog"]
        assert_carries_invocation(message, invocation)


def test_global_hook_reaches_clients_created_before_it(endpoint, tracer):
    early = client(endpoint, "sqs")
    url, _ = make_queue(early)
    early.send_message(QueueUrl=url, MessageBody="warm")  # a call before install: nothing registered yet
    receive(early, url)
    install_botocore_hook()
    try:
        install_botocore_hook()
        late = client(endpoint, "sqs")
        install_botocore_hook(late)  # and explicitly on one client: still one registration
        with tracer.start_as_current_span("send") as span:
            early.send_message(QueueUrl=url, MessageBody="early")
            late.send_message(QueueUrl=url, MessageBody="late")
    finally:
        uninstall_botocore_hook()
    for message in receive(early, url, 2):
        assert list(message["MessageAttributes"]) == ["_datadog"]
        dd = json.loads(message["MessageAttributes"]["_datadog"]["StringValue"])
        assert dd["x-datadog-parent-id"] == str(span.get_span_context().span_id)
    with tracer.start_as_current_span("send"):
        early.send_message(QueueUrl=url, MessageBody="after")
    assert "MessageAttributes" not in receive(early, url)[0]


def test_user_errors_unchanged_by_the_hook(endpoint, tracer):
    from botocore.exceptions import ParamValidationError

    sqs = client(endpoint, "sqs")
    url, _ = make_queue(sqs)
    errors = []
    for installed in (False, True):
        if installed:
            install_botocore_hook()
        try:
            with tracer.start_as_current_span("send"):
                with pytest.raises(ParamValidationError) as info:
                    sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes="not a dict")
            errors.append(str(info.value))
        finally:
            uninstall_botocore_hook()
    assert errors[0] == errors[1]


@pytest.mark.parametrize("otel_first", [True, False])
def test_exactly_one_datadog_with_otel_botocore_either_order(endpoint, tracer, otel_first):
    from botocore.client import BaseClient
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from wrapt import ObjectProxy

    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=ids.DatadogXRayIdGenerator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sqs = client(endpoint, "sqs")  # before either is installed
    url, arn = make_queue(sqs)
    instrumentor = BotocoreInstrumentor()
    steps = [lambda: instrumentor.instrument(tracer_provider=provider), install_botocore_hook]
    for step in steps if otel_first else steps[::-1]:
        step()
    try:
        exporter.clear()
        with tracer.start_as_current_span("caller") as span:
            sqs.send_message(QueueUrl=url, MessageBody="one")
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "two"}, {"Id": "b", "MessageBody": "3"}])
        client_spans = {s.name: s for s in exporter.get_finished_spans()}
    finally:
        instrumentor.uninstrument()
        uninstall_botocore_hook()
    assert not isinstance(BaseClient._make_api_call, ObjectProxy)  # OTel's uninstrument still works
    messages = receive(sqs, url, 3)
    for m in messages:
        assert list(m["MessageAttributes"]).count("_datadog") == 1
        dd = json.loads(m["MessageAttributes"]["_datadog"]["StringValue"])
        assert dd["x-datadog-trace-id"] == str(span.get_span_context().trace_id & ids.LOW64_MASK)
        # Whichever was installed first, the context is OTel's client span for that call.
        operation = "SendMessage" if m["Body"] == "one" else "SendMessageBatch"
        assert dd["x-datadog-parent-id"] == str(client_spans["SQS." + operation].context.span_id)
    with tracer.start_as_current_span("caller"):
        sqs.send_message(QueueUrl=url, MessageBody="after")
    assert "MessageAttributes" not in receive(sqs, url)[0]


# ---------------------------------------------------------------- injection never corrupts a message (issue 9.7)


NON_UTF8 = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-8-sig"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8)
json_objects = st.dictionaries(st.text(max_size=5).filter(lambda k: k != "_datadog"), json_values, max_size=4)


@settings(max_examples=200, deadline=None)
@given(obj=json_objects, encoding=st.sampled_from(NON_UTF8 + ["utf-8"]), ensure_ascii=st.booleans())
def test_splice_only_utf8_json(obj, encoding, ensure_ascii):
    data = json.dumps(obj, ensure_ascii=ensure_ascii).encode(encoding)
    out = splice_json(data, '{"k":"v"}')
    if encoding != "utf-8":
        assert out is None
        return
    decoded = json.loads(out.decode("utf-8"))
    assert decoded.pop("_datadog") == {"k": "v"} and decoded == obj
    cut = out.rindex(b"}") - len(b'"_datadog":{"k":"v"}') - (1 if obj else 0)
    assert out[:cut] + out[cut + len(out) - len(data):] == data  # the rest is byte for byte


def kinesis_records(kinesis, stream):
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return kinesis.get_records(ShardIterator=iterator)["Records"]


def test_kinesis_non_utf8_json_sent_unchanged(endpoint, tracer):
    kinesis = hooked(endpoint, "kinesis")
    stream = "s-" + uuid.uuid4().hex[:8]
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    payload = {"city": "Zürich", "n": 1}
    blobs = [json.dumps(payload, ensure_ascii=False).encode(e) for e in NON_UTF8]
    with tracer.start_as_current_span("put"):
        for blob in blobs[:3]:
            params = {"StreamName": stream, "Data": blob, "PartitionKey": "p"}
            assert inject(dict(params), "kinesis") is False
            kinesis.put_record(**params)
        kinesis.put_records(StreamName=stream, Records=[{"Data": b, "PartitionKey": "p"} for b in blobs[3:]])
    records = kinesis_records(kinesis, stream)
    assert [r["Data"] for r in records] == blobs
    for record, encoding in zip(records, NON_UTF8):
        assert json.loads(record["Data"].decode(encoding)) == payload  # the consumer still decodes it


# EventBridge counts an entry as the doc "Calculating Amazon EventBridge PutEvents event entry
# size" says; written out again here from the doc, independently of the package.
PUT_EVENTS_LIMIT = 256 * 1024  # an entry, and the whole request, must be smaller


def aws_entry_size(entry):
    size = 14 if entry.get("Time") is not None else 0
    size += len(entry["Source"].encode()) + len(entry["DetailType"].encode())
    if entry.get("Detail") is not None:
        size += len(entry["Detail"].encode())
    for resource in entry.get("Resources") or []:
        size += len(resource.encode())
    return size


def sent_entries(events, entries):
    """Call PutEvents through the hooked client; return the entries as serialized on the wire."""
    sent = {}

    def capture(params, **kwargs):
        sent["body"] = json.loads(params["body"])
        raise _Stop()  # what moto would store is checked once below, not for every generated case

    events.meta.events.register("before-call.events.PutEvents", capture)
    try:
        with pytest.raises(_Stop):
            events.put_events(Entries=entries)
    finally:
        events.meta.events.unregister("before-call.events.PutEvents", capture)
    return sent["body"]["Entries"]


def test_put_events_counts_time_only_when_given_and_resources(endpoint, tracer):
    events = hooked(endpoint, "events")
    resources = ["arn:aws:s3:::bucket-%04d" % i for i in range(100)]
    base = {"Source": "my.app", "DetailType": "order", "Resources": resources}
    fixed = aws_entry_size(dict(base, Detail='{"p":""}'))

    def entry(size, **extra):  # an entry of exactly `size` bytes as AWS counts them
        e = dict(base, **extra)
        return dict(e, Detail='{"p":"%s"}' % ("x" * (size - aws_entry_size(dict(e, Detail='{"p":""}')))))

    with tracer.start_as_current_span("put"):  # one span: the same _datadog length throughout
        roomy = entry(100_000)
        kept = json.dumps(roomy)
        (sent,) = sent_entries(events, [roomy])
        assert json.dumps(roomy) == kept  # the caller's entry is not modified (it may be resent)
        added = aws_entry_size(sent) - aws_entry_size(roomy)
        assert added > 0 and "_datadog" in json.loads(sent["Detail"])
        largest = PUT_EVENTS_LIMIT - 1 - added  # the largest entry that still takes the context
        untimed = entry(largest)
        (sent,) = sent_entries(events, [untimed])
        assert aws_entry_size(sent) == PUT_EVENTS_LIMIT - 1  # injected: no Time, nothing counted for it
        timed = dict(untimed, Time=1700000000)
        (sent,) = sent_entries(events, [timed])
        assert sent["Detail"] == timed["Detail"]  # its Time's 14 bytes leave no room
        # A batch whose Resources fill it: each entry has room, the request has not.
        half = (PUT_EVENTS_LIMIT - 1) // 2
        pair = [entry(half), entry(PUT_EVENTS_LIMIT - 1 - half - added - added // 2)]  # room for one
        sent = sent_entries(events, pair)
        assert "_datadog" in json.loads(sent[0]["Detail"]) and sent[1]["Detail"] == pair[1]["Detail"]
        assert sum(aws_entry_size(e) for e in sent) < PUT_EVENTS_LIMIT
        assert fixed > 2000  # the Resources really are a large part of each entry
        # And moto accepts what is sent.
        assert events.put_events(Entries=[roomy])["FailedEntryCount"] == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_put_events_batch_stays_under_limit(endpoint, tracer, data):
    count = data.draw(st.integers(1, 10))
    share = PUT_EVENTS_LIMIT // count
    entries = []
    for _ in range(count):
        resources = data.draw(st.lists(st.text(min_size=1, max_size=40), max_size=5))
        entry = {"Source": "my.app", "DetailType": data.draw(st.text(min_size=1, max_size=20)), "Resources": resources}
        if data.draw(st.booleans()):
            entry["Time"] = 1700000000
        fixed = aws_entry_size(dict(entry, Detail='{"p":""}'))
        pad = max(0, share - fixed - data.draw(st.integers(-200, 400)))
        entry["Detail"] = '{"p":"%s"}' % ("é" * (pad // 2) if data.draw(st.booleans()) else "x" * pad)
        entries.append(entry)
    before = sum(aws_entry_size(e) for e in entries)
    events = hooked(endpoint, "events")
    with tracer.start_as_current_span("put"):
        sent = sent_entries(events, entries)
    after = sum(aws_entry_size(e) for e in sent)
    assert after == before or after < PUT_EVENTS_LIMIT
    for original, wire in zip(entries, sent):
        if wire["Detail"] != original["Detail"]:
            assert aws_entry_size(wire) < PUT_EVENTS_LIMIT
            assert json.loads(wire["Detail"])["p"] == json.loads(original["Detail"])["p"]


def invoke_client_context(endpoint, tracer, client_context=None):
    """The X-Amz-Client-Context header an Invoke sends (moto runs no Lambda without Docker)."""
    lam = hooked(endpoint, "lambda")
    captured = {}

    def capture(params, **kwargs):
        captured.update(params["headers"])
        raise _Stop()

    lam.meta.events.register("before-call.lambda.Invoke", capture)
    kwargs = {"ClientContext": client_context} if client_context is not None else {}
    with tracer.start_as_current_span("invoke") as span:
        with pytest.raises(_Stop):
            lam.invoke(FunctionName="f", Payload=b"{}", **kwargs)
    return captured.get("X-Amz-Client-Context"), span


def b64(text):
    return base64.b64encode(text.encode()).decode()


def test_client_context_kept_byte_for_byte(endpoint, tracer):
    user = '{ "custom" : { "n": 1e400, "f": 1.50 } ,\n "env": {"k": "\\u00e9"}, "client": {}}'
    header, span = invoke_client_context(endpoint, tracer, b64(user))
    sent = base64.b64decode(header).decode()
    custom_end = sent.index("}")  # the end of the user's custom object, after the added fields
    assert sent.startswith(user[:user.index("}")]) and sent[custom_end:] == user[user.index("}"):]
    assert '"n": 1e400, "f": 1.50' in sent
    added = json.loads(sent)["custom"]
    assert added["x-datadog-parent-id"] == str(span.get_span_context().span_id)


@pytest.mark.parametrize("user", [
    b64("[1, 2]"), b64('"text"'), b64('{"custom": null}'), b64('{"custom": [1]}'), b64("{not json"),
    b64('{"custom": {"a": 1}, "custom": {"b": 2}}'), "not base64!",
    base64.b64encode('{"custom": {}}'.encode("utf-16")).decode(),
    b64('{"custom": {"x-datadog-trace-id": "1"}}'),
    b64('{"custom": {"k": "%s"}}' % ("v" * 2600)),  # fits, but not with the trace fields
])
def test_client_context_left_untouched(endpoint, tracer, user):
    header, _ = invoke_client_context(endpoint, tracer, user)
    assert header == user


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obj=json_objects, custom=st.none() | json_objects.filter(lambda d: not any(k.startswith(("x-datadog", "trace")) for k in d)),
       indent=st.sampled_from([None, 0, 2]), separators=st.sampled_from([None, (",", ":"), (" , ", " : ")]),
       ensure_ascii=st.booleans())
def test_client_context_splice_property(tracer, obj, custom, indent, separators, ensure_ascii):
    obj = {k: v for k, v in obj.items() if k != "custom"}
    if custom is not None:
        obj["custom"] = custom
    user = json.dumps(obj, indent=indent, separators=separators, ensure_ascii=ensure_ascii)
    raw = b64(user)
    params = {"FunctionName": "f", "ClientContext": raw}
    with tracer.start_as_current_span("invoke") as span:
        injected = inject(params, "lambda")
    if not injected:
        assert params["ClientContext"] == raw and len(b64(user)) > 3000  # only the size limit forbids it here
        return
    sent = base64.b64decode(params["ClientContext"]).decode()
    assert len(params["ClientContext"]) <= 3583
    prefix = next(i for i, (a, b) in enumerate(zip(user + "\0", sent)) if a != b)
    assert sent[prefix + len(sent) - len(user):] == user[prefix:]  # one insertion, nothing else changed
    decoded = json.loads(sent)
    headers = {k: v for k, v in decoded["custom"].items() if k not in (custom or {})}
    assert headers["x-datadog-parent-id"] == str(span.get_span_context().span_id)
    decoded["custom"] = {k: v for k, v in decoded["custom"].items() if k in (custom or {})}
    assert decoded == dict(obj, custom=custom or {})
