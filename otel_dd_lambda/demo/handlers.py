"""The demo's three Lambda handlers, instrumented with ``instrument_handler``.

They use plain boto3: the trace context reaches SQS and EventBridge through the botocore hook
that ``configure()`` installs, with no tracing code in the handlers themselves.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict

from otel_dd_lambda import instrument_handler

logger = logging.getLogger("otel_dd_lambda.demo")

# Set by the demo runner before the first invocation: boto3 clients and resource names.
clients: Dict[str, Any] = {}


@instrument_handler
def api_handler(event: Dict[str, Any], context: Any) -> Dict[str, Any]:
    """HTTP API: accept an order and queue it."""
    order = json.loads(event.get("body") or "{}")
    clients["sqs"].send_message(QueueUrl=clients["orders_queue_url"], MessageBody=json.dumps(order))
    logger.info("order %s queued", order.get("id"))
    return {"statusCode": 202, "body": json.dumps({"queued": order.get("id")})}


@instrument_handler
def worker_handler(event: Dict[str, Any], context: Any) -> Dict[str, Any]:
    """SQS consumer: publish one EventBridge event per order."""
    entries = []
    for record in event["Records"]:
        order = json.loads(record["body"])
        entries.append({"Source": "demo.orders", "DetailType": "OrderAccepted",
                        "Detail": json.dumps({"order": order}), "EventBusName": "default"})
    clients["events"].put_events(Entries=entries)
    clients["last_entries"] = entries
    return {"batchItemFailures": []}


@instrument_handler
def notifier_handler(event: Dict[str, Any], context: Any) -> None:
    """EventBridge consumer: the end of the line."""
    logger.info("notifying about order %s", event["detail"]["order"].get("id"))
