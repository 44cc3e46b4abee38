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
when the invocation starts. An event without a usable time gets no inferred span. The trigger,
its API Gateway subtype and the start time are what ``extract_context`` found (``EventContext``). Datadog's
exporter mapping turns ``operation.name``/``resource.name``/``service.name``/``span.type`` into
the span's name, resource, service and type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from opentelemetry.trace import SpanKind

from ..carriers import detect
from ..config import keep_url_query
from ..limits import MAX_RESOURCE, path_tag, truncate_utf8, url_tag
from .invocation import MESSAGING_SYSTEM

if TYPE_CHECKING:
    from ..extract import EventContext

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


def _arn_name(arn: Optional[str]) -> Optional[str]:
    return arn.rsplit(":", 1)[-1] or None if arn else None


def _http(event: Dict[str, Any], trigger: str, subtype: Optional[str], start: int) -> InferredSpan:
    ctx = _dict(event.get("requestContext"))
    domain = _str(ctx.get("domainName")) or ""
    api_id = _str(ctx.get("apiId"))
    http = _dict(ctx.get("http"))
    tags: Dict[str, Any] = {"apiid": api_id, "apiname": api_id, "stage": _str(ctx.get("stage")),
                            "request_id": _str(ctx.get("requestId"))}
    method: Optional[str] = None
    path: Optional[str] = None
    if trigger == detect.FUNCTION_URL:
        method, path = _str(http.get("method")), _str(event.get("rawPath")) or "/"
        name, resource = "aws.lambda.url", "%s %s" % (method, path)
    elif subtype == detect.WEBSOCKET:
        name, resource = "aws.apigateway.websocket", _str(ctx.get("routeKey")) or "$default"
        tags["connection_id"] = _str(ctx.get("connectionId"))
        tags["event_type"] = _str(ctx.get("eventType"))
    elif subtype == detect.HTTP_API:
        method, path = _str(http.get("method")), _str(event.get("rawPath"))
        route_key = _str(ctx.get("routeKey")) or ""
        http_route = route_key.split(" ", 1)[-1] if "{" in route_key else (path or route_key)
        name, resource = "aws.httpapi", "%s %s" % (method, http_route)
        tags["http.protocol"] = _str(http.get("protocol"))
        tags["http.source_ip"] = _str(http.get("sourceIp"))
    else:
        method, path = _str(event.get("httpMethod")), _str(event.get("path"))
        route = _str(ctx.get("resourcePath")) or _str(event.get("resource")) or path
        name, resource = "aws.apigateway", "%s %s" % (method, route)
    if method:
        tags["http.method"] = path_tag(method)
    if path:
        # the path comes from the request: bounded, and the URL without query or fragment
        tags["endpoint"] = path_tag(path)
        tags["http.url"] = url_tag("https://%s%s" % (domain, path), keep_url_query())
    resource = truncate_utf8(resource, MAX_RESOURCE)
    return InferredSpan(name, domain or name, resource, start, True, tags)


def _sqs(event: Dict[str, Any], start: int) -> InferredSpan:
    record = _first_record(event)
    arn = _str(record.get("eventSourceARN"))
    queue = _arn_name(arn) or "sqs"
    attrs = _dict(record.get("attributes"))
    tags = {"queuename": queue, "event_source_arn": arn, "receipt_handle": _str(record.get("receiptHandle")),
            "sender_id": _str(attrs.get("SenderId")), "messaging.system": MESSAGING_SYSTEM[detect.SQS]}
    return InferredSpan("aws.sqs", queue, queue, start, False, tags)


def _sns(event: Dict[str, Any], start: int) -> InferredSpan:
    sns = _dict(_first_record(event).get("Sns"))
    arn = _str(sns.get("TopicArn"))
    topic = _arn_name(arn) or "sns"
    tags = {"topicname": topic, "topic_arn": arn, "message_id": _str(sns.get("MessageId")),
            "type": _str(sns.get("Type")), "subject": _str(sns.get("Subject")),
            "messaging.system": MESSAGING_SYSTEM[detect.SNS]}
    return InferredSpan("aws.sns", topic, topic, start, False, tags)


def _eventbridge(event: Dict[str, Any], start: int) -> InferredSpan:
    source = _str(event.get("source")) or "eventbridge"
    tags = {"detail_type": _str(event.get("detail-type")), "messaging.system": MESSAGING_SYSTEM[detect.EVENTBRIDGE]}
    return InferredSpan("aws.eventbridge", source, source, start, False, tags)


def _kinesis(event: Dict[str, Any], start: int) -> InferredSpan:
    record = _first_record(event)
    arn = _str(record.get("eventSourceARN"))
    stream = (_arn_name(arn) or "kinesis")
    if stream.startswith("stream/"):
        stream = stream[len("stream/"):]
    kinesis = _dict(record.get("kinesis"))
    event_id = _str(record.get("eventID")) or ""
    tags = {"streamname": stream, "shardid": event_id.split(":")[0] or None, "event_source_arn": arn,
            "event_id": event_id, "event_name": _str(record.get("eventName")),
            "partition_key": _str(kinesis.get("partitionKey")), "messaging.system": MESSAGING_SYSTEM[detect.KINESIS]}
    return InferredSpan("aws.kinesis", stream, stream, start, False, tags)


def _dynamodb(event: Dict[str, Any], start: int) -> InferredSpan:
    record = _first_record(event)
    arn = _str(record.get("eventSourceARN")) or ""
    parts = arn.split("/")
    table = parts[1] if len(parts) > 1 and parts[1] else "dynamodb"
    dynamodb = _dict(record.get("dynamodb"))
    tags = {"tablename": table, "event_source_arn": arn or None, "event_id": _str(record.get("eventID")),
            "event_name": _str(record.get("eventName")), "stream_view_type": _str(dynamodb.get("StreamViewType"))}
    return InferredSpan("aws.dynamodb", table, table, start, False, tags)


def _s3(event: Dict[str, Any], start: int) -> InferredSpan:
    record = _first_record(event)
    s3 = _dict(record.get("s3"))
    bucket = _dict(s3.get("bucket"))
    obj = _dict(s3.get("object"))
    name = _str(bucket.get("name")) or "s3"
    tags = {"bucketname": name, "bucket_arn": _str(bucket.get("arn")), "object_key": _str(obj.get("key")),
            "object_etag": _str(obj.get("eTag")), "event_name": _str(record.get("eventName"))}
    return InferredSpan("aws.s3", name, name, start, False, tags)


_BUILDERS: Dict[str, Callable[[Dict[str, Any], int], InferredSpan]] = {
    detect.SQS: _sqs,
    detect.SNS: _sns,
    detect.EVENTBRIDGE: _eventbridge,
    detect.KINESIS: _kinesis,
    detect.DYNAMODB: _dynamodb,
    detect.S3: _s3,
}
_HTTP_TRIGGERS = frozenset((detect.API_GATEWAY, detect.FUNCTION_URL))  # not ALB (Datadog infers none)


def inferred_span(extracted: EventContext, now_ns: int) -> Optional[InferredSpan]:
    """The inferred span for an extracted event, or None (other trigger, no usable event time,
    malformed event, odd clock)."""
    trigger, event = extracted.trigger, extracted.event
    if type(event) is not dict or not trigger:
        return None
    builder = _BUILDERS.get(trigger)
    if builder is None and trigger not in _HTTP_TRIGGERS:
        return None
    start = extracted.event_time_ns
    if start is None or not -MAX_FUTURE_NS <= now_ns - start <= MAX_AGE_NS:
        return None
    try:
        if builder is not None:
            return builder(event, start)
        return _http(event, trigger, extracted.subtype, start)
    except Exception:  # malformed event: no inferred span, never an error
        return None
