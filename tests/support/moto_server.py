"""A real moto server (AWS APIs over HTTP) on 127.0.0.1, on a free port, for boto3 clients."""

from __future__ import annotations

import base64
import contextlib
import logging
import uuid
from typing import Any, Dict, Iterator, List, Optional, Tuple

REGION = "us-east-1"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's threaded server, yield its endpoint URL, stop it afterwards."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO: an access log, noise in a failing test's report
    # (its errors, WARNING and above, still show)
    access_log = logging.getLogger("werkzeug")
    level = access_log.level
    access_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield "http://%s:%d" % (host, port)
    finally:
        server.stop()
        access_log.setLevel(level)


def client(endpoint: str, service: str):
    """A boto3 client for ``service`` on the moto endpoint, with dummy credentials."""
    import boto3

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    return session.client(service, endpoint_url=endpoint)


def hooked(endpoint: str, service: str) -> Any:
    """A boto3 client of the moto server with our injection hook on it."""
    from otel_dd_lambda.botocore_hook import install_botocore_hook

    c = client(endpoint, service)
    install_botocore_hook(c)
    return c


def aws_env(endpoint: str) -> Dict[str, str]:
    """Environment variables that point a plain ``boto3.client(service)`` (as in a Lambda
    function, no arguments) at the moto endpoint, for a subprocess."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


# ---------------------------------------------------------------- Lambda event builders
# Fields moto does not return and that had to be constructed: eventSource, eventSourceARN, awsRegion;
# SQS message attributes are renamed from the API's DataType/StringValue/BinaryValue to the
# Lambda event's dataType/stringValue/binaryValue (binary as base64, as Lambda delivers it).


def sqs_event(messages: List[Dict[str, Any]], queue_arn: str) -> Dict[str, Any]:
    """The SQS event Lambda would deliver for ``messages`` (as ``receive_message`` returned them)."""
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


def make_queue(sqs: Any, name: Optional[str] = None) -> Tuple[str, str]:
    """A new queue (a unique name unless ``name``): its URL and ARN."""
    url = sqs.create_queue(QueueName=name or "q-" + uuid.uuid4().hex[:8])["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def receive(sqs: Any, url: str, count: int = 1) -> List[Dict[str, Any]]:
    """Exactly ``count`` messages from the queue, with all their attributes."""
    messages = []
    for _ in range(10):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                  AttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
        messages.extend(got)
        if len(messages) >= count:
            break
    assert len(messages) == count
    return messages
