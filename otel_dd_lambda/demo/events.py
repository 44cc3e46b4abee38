"""Lambda events and contexts, built the way AWS would build them for the demo's invocations."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Dict, List, Optional


class DemoContext:
    """A stand-in for the Lambda runtime's context object."""

    def __init__(self, function_name: str, region: str = "us-east-1", account: str = "123456789012",
                 timeout_ms: int = 10_000) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = "arn:aws:lambda:%s:%s:function:%s" % (region, account, function_name)
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 256
        self.client_context = None
        self.identity = None
        self._deadline = time.monotonic() + timeout_ms / 1000.0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def http_api_event(body: Dict[str, Any], region: str = "us-east-1") -> Dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) request, as from a client with no trace context."""
    now_ms = int(time.time() * 1000)
    domain = "demo123.execute-api.%s.amazonaws.com" % region
    return {
        "version": "2.0", "routeKey": "POST /orders", "rawPath": "/orders", "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": domain, "user-agent": "otel-dd-lambda-demo"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "demo123", "domainName": domain, "domainPrefix": "demo123",
            "http": {"method": "POST", "path": "/orders", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "otel-dd-lambda-demo"},
            "requestId": str(uuid.uuid4()), "routeKey": "POST /orders", "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()), "timeEpoch": now_ms,
        },
        "body": json.dumps(body), "isBase64Encoded": False,
    }


def _message_attributes(attributes: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """ReceiveMessage's MessageAttributes in the Lambda event's spelling."""
    out = {}
    for name, value in (attributes or {}).items():
        entry = {"dataType": value.get("DataType"), "stringListValues": [], "binaryListValues": []}
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            import base64

            entry["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        out[name] = entry
    return out


def sqs_event(messages: List[Dict[str, Any]], queue_arn: str, region: str = "us-east-1") -> Dict[str, Any]:
    """The SQS event Lambda's poller would build from ``ReceiveMessage`` output."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": _message_attributes(m.get("MessageAttributes")),
        "md5OfBody": m.get("MD5OfBody"), "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region,
    } for m in messages]}


def eventbridge_event_from_entry(entry: Dict[str, Any], region: str = "us-east-1") -> Dict[str, Any]:
    """The EventBridge event a rule would deliver for one PutEvents entry."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": entry["DetailType"], "source": entry["Source"],
        "account": "123456789012", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "region": region,
        "resources": [], "detail": json.loads(entry["Detail"]),
    }
