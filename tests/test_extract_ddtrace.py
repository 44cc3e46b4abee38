"""What ddtrace's own botocore integration injects (SQS, SNS, EventBridge, Kinesis) is read by
our extraction. ddtrace runs patched in a subprocess, against the same moto server."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from otel_dd_lambda import extract_context
from tests.support.moto_server import REGION, client, make_queue, receive, sqs_event

_PRODUCER = r"""
import json, sys
from ddtrace import patch, tracer
patch(botocore=True)
import boto3
endpoint, queue_url, topic, bus_detail, stream = sys.argv[1:6]
session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
out = {}
with tracer.trace("producer") as root:
    session.client("sqs", endpoint_url=endpoint).send_message(QueueUrl=queue_url, MessageBody="from ddtrace")
    session.client("sns", endpoint_url=endpoint).publish(TopicArn=topic, Message="from ddtrace")
    session.client("events", endpoint_url=endpoint).put_events(
        Entries=[{"Source": "dd.app", "DetailType": "t", "Detail": bus_detail}])
    session.client("kinesis", endpoint_url=endpoint).put_record(StreamName=stream, Data=b'{"k": 1}', PartitionKey="p")
    out["trace_id"] = root.trace_id
print(json.dumps(out))
"""


def test_ddtrace_injection_is_read_by_ours(endpoint, monkeypatch):
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    sqs, sns, events, kinesis = (client(endpoint, s) for s in ("sqs", "sns", "events", "kinesis"))
    direct_url, direct_arn = make_queue(sqs)
    sns_url, sns_arn = make_queue(sqs)
    eb_url, eb_arn = make_queue(sqs)
    topic = sns.create_topic(Name="t-" + uuid.uuid4().hex[:8])["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=sns_arn)
    rule = "r-" + uuid.uuid4().hex[:8]
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["dd.app"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": eb_arn}])
    stream = "s-" + uuid.uuid4().hex[:8]
    kinesis.create_stream(StreamName=stream, ShardCount=1)

    env = {"DD_TRACE_ENABLED": "true", "DD_TRACE_AGENT_URL": "http://127.0.0.1:9",
           "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false", "DD_REMOTE_CONFIGURATION_ENABLED": "false",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", _PRODUCER, endpoint, direct_url, topic, '{"order": 1}', stream],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    trace_id = json.loads(done.stdout.strip().splitlines()[-1])["trace_id"]

    found = {}
    found["sqs"] = extract_context(sqs_event(receive(sqs, direct_url), direct_arn)).parent
    found["sns"] = extract_context(sqs_event(receive(sqs, sns_url), sns_arn)).parent
    found["eventbridge"] = extract_context(sqs_event(receive(sqs, eb_url), eb_arn)).parent
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    import base64

    (record,) = kinesis.get_records(ShardIterator=it)["Records"]
    kinesis_event = {"Records": [{"kinesis": {"data": base64.b64encode(record["Data"]).decode(),
                                              "sequenceNumber": record["SequenceNumber"]},
                                  "eventSource": "aws:kinesis", "awsRegion": REGION}]}
    found["kinesis"] = extract_context(kinesis_event).parent
    for service, parent in found.items():
        assert parent is not None, service
        assert parent.trace_id == trace_id, service
