"""Inferred spans: the managed service that triggered the function (``DD_TRACE_MANAGED_SERVICES``).

AWS services do not trace themselves into Datadog, so, as datadog_lambda does, the invocation
gets a parent span standing for the service, starting at the time the event says it entered it:

| trigger | name | service / resource | start |
|---|---|---|---|
| API Gateway REST | ``aws.apigateway`` | domain / ``METHOD /route`` | ``requestTimeEpoch`` |
| API Gateway HTTP API | ``aws.httpapi`` | domain / ``METHOD /route`` | ``timeEpoch`` |
| API Gateway websocket | ``aws.apigateway.websocket`` | domain / route key | ``requestTimeEpoch`` |
| Function URL | ``aws.lambda.url`` | domain / ``METHOD path`` | ``timeEpoch`` |
| SQS | ``aws.sqs`` | queue name | ``SentTimestamp`` |
| SNS | ``aws.sns`` | topic name | ``Timestamp`` |
| EventBridge | ``aws.eventbridge`` | ``source`` | ``time`` |
| Kinesis | ``aws.kinesis`` | stream name | ``approximateArrivalTimestamp`` |
| DynamoDB | ``aws.dynamodb`` | table name | ``ApproximateCreationDateTime`` |
| S3 | ``aws.s3`` | bucket name | ``eventTime`` |

HTTP ones are synchronous (they end with the invocation); the others are asynchronous and end
when the invocation starts. An event without a usable time gets no inferred span. Datadog's
exporter mapping turns ``operation.name``/``resource.name``/``service.name``/``span.type`` into
the span's name, resource, service and type.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from opentelemetry.trace import SpanKind

from ..config import keep_url_query
from ..limits import MAX_RESOURCE, path_tag, truncate_utf8, url_tag

# SQS keeps messages up to 14 days: an older start (or one from the future) is a bad field.
MAX_AGE_NS = 15 * 24 * 3600 * 1_000_000_000
MAX_FUTURE_NS = 3600 * 1_000_000_000


class InferredSpan:
    """What to open: name, attributes, start time, and whether it ends with the invocation."""

    __slots__ = ("name", "attributes", "start_ns", "synchronous", "kind")

    def __init__(self, name: str, service: str, resource: str, start_ns: int, synchronous: bool,
                 tags: Dict[str, Any]) -> None:
        self.name = name
        self.start_ns = start_ns
        self.synchronous = synchronous
        self.kind = SpanKind.SERVER if synchronous else SpanKind.PRODUCER
        attributes: Dict[str, Any] = {k: v for k, v in tags.items() if type(v) is str and v}
        attributes.update({
            "operation.name": name,
            "resource.name": resource,
            "service.name": service,
            "span.type": "web",
            "resource_names": resource,
            "_inferred_span.tag_source": "self",
            "_inferred_span.synchronicity": "sync" if synchronous else "async",
            "_dd.origin": "lambda",
        })
        self.attributes = attributes


def _dict(value: Any) -> Dict[str, Any]:
    return value if type(value) is dict else {}


def _str(value: Any) -> Optional[str]:
    return value if type(value) is str and value else None


def _first_record(event: Dict[str, Any]) -> Dict[str, Any]:
    records = event.get("Records")
    return _dict(records[0]) if type(records) is list and records else {}


def _ms(value: Any) -> Optional[int]:
    """Epoch milliseconds (int, float or digit string) to ns."""
    if type(value) is str and value.isdigit() and len(value) <= 16:
        value = int(value)
    if type(value) in (int, float) and value > 0:
        return int(value * 1_000_000)
    return None


def _seconds(value: Any) -> Optional[int]:
    if type(value) is str:
        try:
            value = float(value)
        except ValueError:
            return None
    if type(value) in (int, float) and value > 0:
        return int(value * 1_000_000_000)
    return None


def _iso(value: Any) -> Optional[int]:
    """``2024-01-02T03:04:05(.fff)Z`` to epoch ns (UTC)."""
    if type(value) is not str or not 19 <= len(value) <= 40:
        return None
    from datetime import datetime, timezone

    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1_000_000) * 1000


def _arn_name(arn: Optional[str]) -> Optional[str]:
    return arn.rsplit(":", 1)[-1] or None if arn else None


def _http(event: Dict[str, Any], trigger: str) -> Optional[InferredSpan]:
    ctx = _dict(event.get("requestContext"))
    domain = _str(ctx.get("domainName")) or ""
    api_id = _str(ctx.get("apiId"))
    http = _dict(ctx.get("http"))
    tags: Dict[str, Any] = {"apiid": api_id, "apiname": api_id, "stage": _str(ctx.get("stage")),
                            "request_id": _str(ctx.get("requestId"))}
    if trigger == "lambda-function-url":
        method, path = _str(http.get("method")), _str(event.get("rawPath")) or "/"
        name, resource, start = "aws.lambda.url", "%s %s" % (method, path), _ms(ctx.get("timeEpoch"))
    elif _str(ctx.get("eventType")) and ctx.get("connectionId") is not None:
        name, resource, start = "aws.apigateway.websocket", _str(ctx.get("routeKey")) or "$default", _ms(
            ctx.get("requestTimeEpoch"))
        method, path = None, None
        tags["connection_id"] = _str(ctx.get("connectionId"))
        tags["event_type"] = _str(ctx.get("eventType"))
    elif event.get("version") == "2.0" or http:
        method, path = _str(http.get("method")), _str(event.get("rawPath"))
        route_key = _str(ctx.get("routeKey")) or ""
        route = route_key.split(" ", 1)[-1] if "{" in route_key else (path or route_key)
        name, resource, start = "aws.httpapi", "%s %s" % (method, route), _ms(ctx.get("timeEpoch"))
        tags["http.protocol"] = _str(http.get("protocol"))
        tags["http.source_ip"] = _str(http.get("sourceIp"))
    else:
        method, path = _str(event.get("httpMethod")), _str(event.get("path"))
        route = _str(ctx.get("resourcePath")) or _str(event.get("resource")) or path
        name, resource, start = "aws.apigateway", "%s %s" % (method, route), _ms(ctx.get("requestTimeEpoch"))
    if start is None:
        return None
    if method:
        tags["http.method"] = path_tag(method)
    if path:
        # the path comes from the request: bounded, and the URL without query or fragment
        tags["endpoint"] = path_tag(path)
        tags["http.url"] = url_tag("https://%s%s" % (domain, path), keep_url_query())
    resource = truncate_utf8(resource, MAX_RESOURCE)
    return InferredSpan(name, domain or name, resource, start, True, tags)


def _sqs(event: Dict[str, Any]) -> Optional[InferredSpan]:
    record = _first_record(event)
    arn = _str(record.get("eventSourceARN"))
    queue = _arn_name(arn) or "sqs"
    attrs = _dict(record.get("attributes"))
    start = _ms(attrs.get("SentTimestamp"))
    if start is None:
        return None
    tags = {"queuename": queue, "event_source_arn": arn, "receipt_handle": _str(record.get("receiptHandle")),
            "sender_id": _str(attrs.get("SenderId")), "messaging.system": "aws_sqs"}
    return InferredSpan("aws.sqs", queue, queue, start, False, tags)


def _sns(event: Dict[str, Any]) -> Optional[InferredSpan]:
    sns = _dict(_first_record(event).get("Sns"))
    arn = _str(sns.get("TopicArn"))
    topic = _arn_name(arn) or "sns"
    start = _iso(sns.get("Timestamp"))
    if start is None:
        return None
    tags = {"topicname": topic, "topic_arn": arn, "message_id": _str(sns.get("MessageId")),
            "type": _str(sns.get("Type")), "subject": _str(sns.get("Subject")), "messaging.system": "aws_sns"}
    return InferredSpan("aws.sns", topic, topic, start, False, tags)


def _eventbridge(event: Dict[str, Any]) -> Optional[InferredSpan]:
    source = _str(event.get("source")) or "eventbridge"
    start = _iso(event.get("time"))
    if start is None:
        return None
    tags = {"detail_type": _str(event.get("detail-type")), "messaging.system": "aws_eventbridge"}
    return InferredSpan("aws.eventbridge", source, source, start, False, tags)


def _kinesis(event: Dict[str, Any]) -> Optional[InferredSpan]:
    record = _first_record(event)
    arn = _str(record.get("eventSourceARN"))
    stream = (_arn_name(arn) or "kinesis")
    if stream.startswith("stream/"):
        stream = stream[len("stream/"):]
    kinesis = _dict(record.get("kinesis"))
    start = _seconds(kinesis.get("approximateArrivalTimestamp"))
    if start is None:
        return None
    event_id = _str(record.get("eventID")) or ""
    tags = {"streamname": stream, "shardid": event_id.split(":")[0] or None, "event_source_arn": arn,
            "event_id": event_id, "event_name": _str(record.get("eventName")),
            "partition_key": _str(kinesis.get("partitionKey")), "messaging.system": "aws_kinesis"}
    return InferredSpan("aws.kinesis", stream, stream, start, False, tags)


def _dynamodb(event: Dict[str, Any]) -> Optional[InferredSpan]:
    record = _first_record(event)
    arn = _str(record.get("eventSourceARN")) or ""
    parts = arn.split("/")
    table = parts[1] if len(parts) > 1 and parts[1] else "dynamodb"
    dynamodb = _dict(record.get("dynamodb"))
    start = _seconds(dynamodb.get("ApproximateCreationDateTime"))
    if start is None:
        return None
    tags = {"tablename": table, "event_source_arn": arn or None, "event_id": _str(record.get("eventID")),
            "event_name": _str(record.get("eventName")), "stream_view_type": _str(dynamodb.get("StreamViewType"))}
    return InferredSpan("aws.dynamodb", table, table, start, False, tags)


def _s3(event: Dict[str, Any]) -> Optional[InferredSpan]:
    record = _first_record(event)
    s3 = _dict(record.get("s3"))
    bucket = _dict(s3.get("bucket"))
    obj = _dict(s3.get("object"))
    name = _str(bucket.get("name")) or "s3"
    start = _iso(record.get("eventTime"))
    if start is None:
        return None
    tags = {"bucketname": name, "bucket_arn": _str(bucket.get("arn")), "object_key": _str(obj.get("key")),
            "object_etag": _str(obj.get("eTag")), "event_name": _str(record.get("eventName"))}
    return InferredSpan("aws.s3", name, name, start, False, tags)


_BUILDERS = {
    "sqs": _sqs,
    "sns": _sns,
    "eventbridge": _eventbridge,
    "kinesis": _kinesis,
    "dynamodb": _dynamodb,
    "s3": _s3,
}


def inferred_span(event: Any, trigger: Optional[str], now_ns: int) -> Optional[InferredSpan]:
    """The inferred span for ``event``, or None (other trigger, malformed event, odd clock)."""
    if type(event) is not dict or not trigger:
        return None
    try:
        if trigger in ("api-gateway", "lambda-function-url"):
            span = _http(event, trigger)
        else:
            builder = _BUILDERS.get(trigger)
            span = builder(event) if builder else None
    except Exception:  # malformed event: no inferred span, never an error
        return None
    if span is None or not -MAX_FUTURE_NS <= now_ns - span.start_ns <= MAX_AGE_NS:
        return None
    return span
