"""Inferred spans: the managed service that triggered the function (``DD_TRACE_MANAGED_SERVICES``).

AWS services do not trace themselves into Datadog, so, as datadog_lambda does, the invocation
gets a parent span standing for the service, starting at the time the event says it entered it:

| trigger | name | service: mapping keys, name (fallback) | resource | start |
|---|---|---|---|---|
| API Gateway REST | `aws.apigateway` | API id, `lambda_api_gateway`, domain | `METHOD /route` | `requestTimeEpoch` |
| API Gateway HTTP API | `aws.httpapi` | API id, `lambda_api_gateway`, domain | `METHOD /route` | `timeEpoch` |
| API Gateway websocket | `aws.apigateway.websocket` | as REST | route key | `requestTimeEpoch` |
| Function URL | `aws.lambda.url` | URL id, `lambda_url`, domain | `METHOD path` | `timeEpoch` |
| ALB | `aws.alb` | host, `lambda_alb`, host | `METHOD path` | the invocation's start |
| SQS | `aws.sqs` | queue, `lambda_sqs`, queue (`sqs`) | queue | `SentTimestamp` |
| SNS | `aws.sns` | topic, `lambda_sns`, topic (`sns`) | topic | `Timestamp` |
| EventBridge | `aws.eventbridge` | source, `lambda_eventbridge`, source (`eventbridge`) | source | `time` |
| Kinesis | `aws.kinesis` | stream, `lambda_kinesis`, stream (`kinesis`) | stream | `approximateArrivalTimestamp` |
| DynamoDB | `aws.dynamodb` | table, `lambda_dynamodb`, table (`dynamodb`) | table | `ApproximateCreationDateTime` |
| S3 | `aws.s3` | bucket, `lambda_s3`, bucket (`s3`) | bucket | `eventTime` |

The service is the one ``DD_SERVICE_MAPPING`` maps the specific key (API id, queue name, ...) or
else the generic ``lambda_<service>`` key to; else the user's ``DD_SERVICE`` under
``DD_TRACE_REMOVE_INTEGRATION_SERVICE_NAMES_ENABLED``; else the resource's name, unless
``DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED=false`` makes it the fallback (an HTTP one has
none: the function's own service). A span of another service than the function's carries
``_dd.base_service`` (the function's, lowercase, as ddtrace writes it); with a user-named service
the inferred span's ``peer.service`` is it. HTTP ones are synchronous (they end with the
invocation) unless API Gateway invoked the function asynchronously; the others end when the
invocation starts. An event without a usable time gets no inferred span (ALB events carry none:
that span starts with the invocation). The trigger, its API Gateway subtype and the start time
are what ``extract_context`` found (``EventContext``). Datadog's exporter mapping turns
``operation.name``/``resource.name``/``service.name``/``span.type`` into the span's name,
resource, service and type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from opentelemetry.trace import SpanKind

from .. import config
from ..carriers import detect
from ..carriers.http import first_value
from ..config import InferredServiceSettings
from ..limits import MAX_RESOURCE, path_tag, truncate_utf8, url_tag
from .invocation import MESSAGING_SYSTEM

if TYPE_CHECKING:
    from ..extract import EventContext

# SQS keeps messages up to 14 days: an older start (or one from the future) is a bad field.
MAX_AGE_NS = 15 * 24 * 3600 * 1_000_000_000
MAX_FUTURE_NS = 3600 * 1_000_000_000

_naming = config.env_cached(config.INFERRED_SERVICE_ENV, InferredServiceSettings)


class InferredSpan:
    """What to open: name, attributes, start time, and whether it ends with the invocation.

    Of the builder's ``tags``, only non-empty strings become attributes: the one place that rule
    lives, so builders put event fields in as they are.
    """

    __slots__ = ("name", "attributes", "start_ns", "synchronous", "kind")

    def __init__(self, name: str, service: Optional[str], resource: str, start_ns: int, synchronous: bool,
                 tags: Dict[str, Any], span_type: str = "web") -> None:
        self.name = name
        self.start_ns = start_ns
        self.synchronous = synchronous
        self.kind = SpanKind.SERVER if synchronous else SpanKind.PRODUCER
        attributes: Dict[str, Any] = {
            "operation.name": name,
            "resource.name": resource,
            "span.type": span_type,
            "resource_names": resource,
            "_inferred_span.tag_source": "self",
            "_inferred_span.synchronicity": "sync" if synchronous else "async",
            "_dd.origin": "lambda",
        }
        for key, value in tags.items():
            if type(value) is str and value and key not in attributes:  # the span's own fields win
                attributes[key] = value
        if service is not None:  # else the function's own service (the exporter's default)
            attributes["service.name"] = service
        self.attributes = attributes


class _Service:
    """``DD_SERVICE_MAPPING``'s keys of one resource, its name, and the name without representation."""

    __slots__ = ("specific", "generic", "extracted", "fallback")

    def __init__(self, specific: Optional[str], generic: str, extracted: Optional[str],
                 fallback: Optional[str] = None) -> None:
        self.specific = specific
        self.generic = generic
        self.extracted = extracted
        self.fallback = fallback


def service_name(naming: InferredServiceSettings, service: _Service) -> Optional[str]:
    """The inferred span's service; None: the function's own."""
    mapping = naming.mapping
    if mapping:
        mapped = (mapping.get(service.specific) if service.specific else None) or mapping.get(service.generic)
        if mapped:
            return mapped
    if naming.remove_integration_names and naming.user_service:
        return naming.user_service
    if not naming.representation:
        return service.fallback
    extracted = service.extracted.strip() if service.extracted else None
    return extracted or service.fallback


def _dict(value: Any) -> Dict[str, Any]:
    return value if type(value) is dict else {}


def _str(value: Any) -> Optional[str]:
    return value if type(value) is str and value else None


def _first_record(event: Dict[str, Any]) -> Dict[str, Any]:
    records = event.get("Records")
    return _dict(records[0]) if type(records) is list and records else {}


def _arn_name(arn: Optional[str]) -> Optional[str]:
    return arn.rsplit(":", 1)[-1] or None if arn else None


# What a trigger's builder reads from its event: name, service keys, resource, whether the span
# ends with the invocation, tags, span type.
if TYPE_CHECKING:  # annotations only: subscripting typing generics at import costs cold-start time
    Built = Tuple[str, _Service, str, bool, Dict[str, Any], str]


def _route(event: Dict[str, Any], ctx: Dict[str, Any], path: Optional[str]) -> str:
    """The API's route as Datadog's resource names it: the route key's template (HTTP API), else
    the request path, the REST resource path or the route key."""
    route_key = _str(ctx.get("routeKey")) or ""
    if "{" in route_key and " " in route_key:
        return route_key.split(" ")[1]
    return path or _str(ctx.get("resourcePath")) or route_key


def _http(event: Dict[str, Any], naming: InferredServiceSettings, trigger: str, subtype: Optional[str]) -> Built:
    ctx = _dict(event.get("requestContext"))
    domain = _str(ctx.get("domainName")) or ""
    api_id = _str(ctx.get("apiId"))
    http = _dict(ctx.get("http"))
    tags: Dict[str, Any] = {"apiid": api_id, "apiname": api_id, "stage": ctx.get("stage"),
                            "request_id": ctx.get("requestId")}
    method: Optional[str] = None
    path: Optional[str] = None
    span_type = "web"
    service = _Service(api_id, "lambda_api_gateway", domain)
    if trigger == detect.FUNCTION_URL:
        method, path = _str(http.get("method")), _str(event.get("rawPath")) or _str(http.get("path")) or "/"
        name, resource, span_type = "aws.lambda.url", "%s %s" % (method, path), "http"
        service = _Service(api_id, "lambda_url", domain)
    elif subtype == detect.WEBSOCKET:
        name, resource = "aws.apigateway.websocket", _str(ctx.get("routeKey")) or "$default"
        tags["connection_id"] = ctx.get("connectionId")
        tags["event_type"] = ctx.get("eventType")
    elif subtype == detect.HTTP_API:
        method, path = _str(http.get("method")), _str(event.get("rawPath"))
        name, resource = "aws.httpapi", "%s %s" % (method, _route(event, ctx, path))
        tags["http.protocol"] = http.get("protocol")
        tags["http.source_ip"] = http.get("sourceIp")
    else:
        method, path = _str(event.get("httpMethod")), _str(event.get("path"))
        # (a REST event has no rawPath: the resource path names the route)
        route = _route(event, ctx, _str(event.get("rawPath"))) or _str(event.get("resource")) or path
        name, resource = "aws.apigateway", "%s %s" % (method, route)
    if method:
        tags["http.method"] = path_tag(method)
    if path:
        # the path comes from the request: bounded, and the URL without query or fragment
        tags["endpoint"] = path_tag(path)
        tags["http.url"] = url_tag("https://%s%s" % (domain, path), naming.keep_url_query)
    # API Gateway invoking the function asynchronously answers before it runs (the header as REST
    # APIs spell it, or lowercase as HTTP APIs deliver every header: no scan of them all)
    headers = _dict(event.get("headers"))
    synchronous = (headers.get("X-Amz-Invocation-Type") or headers.get("x-amz-invocation-type")) != "Event"
    return name, service, resource, synchronous, tags, span_type


def _alb(event: Dict[str, Any], naming: InferredServiceSettings) -> Built:
    headers = _dict(event.get("headers")) or _dict(event.get("multiValueHeaders"))
    host = first_value(headers, "host")
    method, path = _str(event.get("httpMethod")), _str(event.get("path"))
    tags: Dict[str, Any] = {"target_group_arn": _str(_dict(_dict(event.get("requestContext")).get("elb"))
                                                     .get("targetGroupArn"))}
    if method:
        tags["http.method"] = path_tag(method)
    if path:
        tags["endpoint"] = path_tag(path)
        if host:
            proto = first_value(headers, "x-forwarded-proto") or "http"
            tags["http.url"] = url_tag("%s://%s%s" % (proto, host, path), naming.keep_url_query)
    resource = "%s %s" % (method, path) if method and path else (method or path or "aws.alb")
    return "aws.alb", _Service(host, "lambda_alb", host), resource, True, tags, "http"


def _sqs(event: Dict[str, Any], naming: InferredServiceSettings) -> Built:
    record = _first_record(event)
    arn = _str(record.get("eventSourceARN"))
    queue = _arn_name(arn) or "sqs"
    attrs = _dict(record.get("attributes"))
    tags = {"queuename": queue, "event_source_arn": arn, "receipt_handle": _str(record.get("receiptHandle")),
            "sender_id": _str(attrs.get("SenderId")), "messaging.system": MESSAGING_SYSTEM[detect.SQS]}
    return "aws.sqs", _Service(queue, "lambda_sqs", queue, "sqs"), queue, False, tags, "web"


def _sns(event: Dict[str, Any], naming: InferredServiceSettings) -> Built:
    sns = _dict(_first_record(event).get("Sns"))
    arn = _str(sns.get("TopicArn"))
    topic = _arn_name(arn) or "sns"
    tags = {"topicname": topic, "topic_arn": arn, "message_id": _str(sns.get("MessageId")),
            "type": _str(sns.get("Type")), "subject": _str(sns.get("Subject")),
            "messaging.system": MESSAGING_SYSTEM[detect.SNS]}
    return "aws.sns", _Service(topic, "lambda_sns", topic, "sns"), topic, False, tags, "web"


def _eventbridge(event: Dict[str, Any], naming: InferredServiceSettings) -> Built:
    source = _str(event.get("source")) or "eventbridge"
    tags = {"detail_type": _str(event.get("detail-type")), "messaging.system": MESSAGING_SYSTEM[detect.EVENTBRIDGE]}
    return "aws.eventbridge", _Service(source, "lambda_eventbridge", source, "eventbridge"), source, False, tags, "web"


def _kinesis(event: Dict[str, Any], naming: InferredServiceSettings) -> Built:
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
    return "aws.kinesis", _Service(stream, "lambda_kinesis", stream, "kinesis"), stream, False, tags, "web"


def _dynamodb(event: Dict[str, Any], naming: InferredServiceSettings) -> Built:
    record = _first_record(event)
    arn = _str(record.get("eventSourceARN")) or ""
    parts = arn.split("/")
    table = parts[1] if len(parts) > 1 and parts[1] else "dynamodb"
    dynamodb = _dict(record.get("dynamodb"))
    tags = {"tablename": table, "event_source_arn": arn or None, "event_id": _str(record.get("eventID")),
            "event_name": _str(record.get("eventName")), "stream_view_type": _str(dynamodb.get("StreamViewType"))}
    return "aws.dynamodb", _Service(table, "lambda_dynamodb", table, "dynamodb"), table, False, tags, "web"


def _s3(event: Dict[str, Any], naming: InferredServiceSettings) -> Built:
    record = _first_record(event)
    s3 = _dict(record.get("s3"))
    bucket = _dict(s3.get("bucket"))
    obj = _dict(s3.get("object"))
    name = _str(bucket.get("name")) or "s3"
    tags = {"bucketname": name, "bucket_arn": _str(bucket.get("arn")), "object_key": _str(obj.get("key")),
            "object_etag": _str(obj.get("eTag")), "event_name": _str(record.get("eventName"))}
    return "aws.s3", _Service(name, "lambda_s3", name, "s3"), name, False, tags, "web"


_BUILDERS: Dict[str, Callable[[Dict[str, Any], InferredServiceSettings], Built]] = {
    detect.SQS: _sqs,
    detect.SNS: _sns,
    detect.EVENTBRIDGE: _eventbridge,
    detect.KINESIS: _kinesis,
    detect.DYNAMODB: _dynamodb,
    detect.S3: _s3,
    detect.ALB: _alb,
}
_HTTP_TRIGGERS = frozenset((detect.API_GATEWAY, detect.FUNCTION_URL))


def inferred_span(extracted: EventContext, now_ns: int) -> Optional[InferredSpan]:
    """The inferred span for an extracted event, or None (other trigger, no usable event time,
    malformed event, odd clock)."""
    trigger, event = extracted.trigger, extracted.event
    if type(event) is not dict or not trigger:
        return None
    builder = _BUILDERS.get(trigger)
    if builder is None and trigger not in _HTTP_TRIGGERS:
        return None
    start = now_ns if trigger == detect.ALB else extracted.event_time_ns  # an ALB event has no time
    if start is None or not -MAX_FUTURE_NS <= now_ns - start <= MAX_AGE_NS:
        return None
    naming = _naming()
    try:
        if builder is not None:
            name, service, resource, synchronous, tags, span_type = builder(event, naming)
        else:
            name, service, resource, synchronous, tags, span_type = _http(event, naming, trigger, extracted.subtype)
        tags["dd_resource_key"] = extracted.trigger_tags.get("function_trigger.event_source_arn")
        spec = InferredSpan(name, service_name(naming, service), truncate_utf8(resource, MAX_RESOURCE),
                            start, synchronous, tags, span_type)
    except Exception:  # malformed event: no inferred span, never an error
        return None
    _name_services(spec.attributes, naming)
    return spec


def _name_services(attributes: Dict[str, Any], naming: InferredServiceSettings) -> None:
    """``peer.service`` (the user-named service the span calls) and ``_dd.base_service`` (the
    function's service, beside which a span of another service stands), as Datadog writes them."""
    if naming.user_service:
        attributes["peer.service"] = naming.user_service
    service = attributes.get("service.name")
    if service is not None and naming.base_service and service.lower() != naming.base_service:
        attributes["_dd.base_service"] = naming.base_service
