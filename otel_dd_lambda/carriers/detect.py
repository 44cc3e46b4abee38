"""Which trigger an event is, in Datadog's vocabulary, with a handful of dict lookups.

Precedence follows Datadog's Lambda library (a record's ``eventSource`` beats everything, then Step
Functions, CloudWatch Events, EventBridge, CloudWatch Logs, ALB, API Gateway / Function URL), so
that trigger tags match. AppSync, which the reference does not name, is ``appsync`` here, and a
paho-mqtt message handed to ``extract_context`` is ``mqtt``. Each name has its row in ``triggers``.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from . import stepfunctions

API_GATEWAY = "api-gateway"
ALB = "application-load-balancer"
FUNCTION_URL = "lambda-function-url"
APPSYNC = "appsync"
CLOUDFRONT = "cloudfront"
CLOUDWATCH_EVENTS = "cloudwatch-events"
CLOUDWATCH_LOGS = "cloudwatch-logs"
DYNAMODB = "dynamodb"
EVENTBRIDGE = "eventbridge"
KINESIS = "kinesis"
S3 = "s3"
SNS = "sns"
SQS = "sqs"
STATES = "states"
MQTT = "mqtt"  # a paho-mqtt message handed to extract_context (not a Lambda trigger)
HTTP_TRIGGERS = frozenset((API_GATEWAY, ALB, FUNCTION_URL))

# API Gateway subtypes (decide where an authorizer's _datadog lives, and which time field).
REST, HTTP_API, WEBSOCKET = "rest", "http-api", "websocket"

_RECORD_SOURCES = {"aws:sqs": SQS, "aws:sns": SNS, "aws:kinesis": KINESIS, "aws:dynamodb": DYNAMODB, "aws:s3": S3}


# Every key that the checks before requestContext's look at: an event with none of them (API
# Gateway, ALB, Function URL, AppSync) skips those checks with one C call.
_EARLY_KEYS = frozenset(("Records", "detail", "source", "detail-type", "awslogs")) | stepfunctions.CONTEXT_OBJECT_KEYS


def detect(event: Any) -> Tuple[Optional[str], Optional[str]]:
    """``(trigger, subtype)``; ``(None, None)`` for an unknown event."""
    if type(event) is not dict:
        # only here: the mqtt module (OTel Getter/Setter classes) stays out of a dict event's cold start
        from . import mqtt

        return (MQTT, None) if mqtt.is_message(event) else (None, None)
    if event.keys().isdisjoint(_EARLY_KEYS):
        return _http_or_appsync(event)
    records = event.get("Records")
    if type(records) is list and records:
        record = records[0]
        if type(record) is dict:
            source = record.get("eventSource") or record.get("EventSource")
            trigger = _RECORD_SOURCES.get(source) if type(source) is str else None
            if record.get("cf"):
                return CLOUDFRONT, None
            if trigger:
                return trigger, None
    context_object_keys = not event.keys().isdisjoint(stepfunctions.CONTEXT_OBJECT_KEYS)
    if context_object_keys and stepfunctions.context_object(event) is not None:
        return STATES, None
    detail = event.get("detail")
    if event.get("source") == "aws.events" or (type(detail) is dict and detail.get("EventCategories") is not None):
        return CLOUDWATCH_EVENTS, None
    if event.get("detail-type"):
        return EVENTBRIDGE, None
    if event.get("awslogs"):
        return CLOUDWATCH_LOGS, None
    return _http_or_appsync(event)


def _http_or_appsync(event: Any) -> Tuple[Optional[str], Optional[str]]:
    ctx = event.get("requestContext")
    if type(ctx) is dict:
        if ctx.get("elb"):
            return ALB, None
        if ctx.get("stage"):
            domain = ctx.get("domainName")
            # The second label is "lambda-url" (the substring test spares API Gateway the split).
            if type(domain) is str and "lambda-url" in domain and domain.split(".", 2)[1:2] == ["lambda-url"]:
                return FUNCTION_URL, None
            if ctx.get("messageDirection"):
                return API_GATEWAY, WEBSOCKET
            if "routeKey" in event:
                return API_GATEWAY, HTTP_API
            return API_GATEWAY, REST
    request = event.get("request")
    if type(request) is dict and "headers" in request:
        return APPSYNC, None
    return None, None
