"""Real round trips: boto3 (with our botocore hook) → moto server → the event as Lambda delivers
it → extract_context, same ids; and what we inject is read by Datadog's reference library."""

from __future__ import annotations

import base64
import json
import os
import uuid

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_dd_lambda import extract_context, ids, inject
from otel_dd_lambda.botocore_hook import install_botocore_hook, uninstall_botocore_hook
from tests.support.moto_server import REGION, aws_env, client, moto_server
from tests.support.reference import reference_extract

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        yield url


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("_X_AMZN_TRACE_ID", "DD_TRACE_EXTRACTOR", "DD_BATCH_PARENT", "DD_TRACE_PROPAGATION_STYLE",
                 "DD_TRACE_PROPAGATION_STYLE_INJECT", "DD_TRACE_PROPAGATION_STYLE_EXTRACT", "OTEL_PROPAGATORS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def tracer():
    return TracerProvider(id_generator=ids.DatadogXRayIdGenerator()).get_tracer("test")


def hooked(endpoint, service):
    c = client(endpoint, service)
    install_botocore_hook(c)
    return c


# ---------------------------------------------------------------- Lambda event builders
# Fields moto does not return and that had to be constructed: eventSource, eventSourceARN, awsRegion;
# SQS message attributes are renamed from the API's DataType/StringValue/BinaryValue to the
# Lambda event's dataType/stringValue/binaryValue (binary as base64, as Lambda delivers it).


def sqs_event(messages, queue_arn):
    records = []
    for m in messages:
        attrs = {}
        for name, a in m.get("MessageAttributes", {}).items():
            attr = {"dataType": a["DataType"]}
            if "StringValue" in a:
                attr["stringValue"] = a["StringValue"]
            if "BinaryValue" in a:
                attr["binaryValue"] = base64.b64encode(a["BinaryValue"]).decode()
            attrs[name] = attr
        records.append({
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": attrs, "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
        })
    return {"Records": records}


def make_queue(sqs, name=None):
    url = sqs.create_queue(QueueName=name or "q-" + uuid.uuid4().hex[:8])["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def receive(sqs, url, count=1):
    messages = []
    for _ in range(10):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                  AttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
        messages.extend(got)
        if len(messages) >= count:
            break
    assert len(messages) == count
    return messages


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
    code = INVOKE % ("import app\napp.QUEUE_URL = %r\nhandler = app.handler" % url, HTTP_EVENT)
    invocation = run_lambda(code, tmp_path, aws_env(endpoint))
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
