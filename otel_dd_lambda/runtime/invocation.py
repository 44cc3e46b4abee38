"""The invocation span's name, kind and attributes: OTel's FaaS conventions and Datadog's tags.

OTel (semantic conventions for FaaS): ``faas.trigger``, ``faas.invocation_id``,
``faas.coldstart``, ``cloud.resource_id`` (the invoked ARN, alias or version included),
``cloud.account.id``; SERVER kind for HTTP and synchronous triggers, CONSUMER for messages
delivered from a queue, topic, stream or bus.

Datadog (what datadog_lambda tags ``aws.lambda`` with): ``cold_start``, ``function_arn``
(lowercase, without the alias/version), ``function_version``, ``request_id``,
``functionname``, ``resource_names``, ``proactive_initialization``, the trigger tags
(``function_trigger.*``, ``http.*``) and, after an HTTP trigger, ``http.status_code``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from opentelemetry.trace import SpanKind

from ..carriers import detect
from ..lambda_context import context_str
from .cold_start import restored as restored_sandbox

# Triggers whose events arrive as messages: the invocation consumes them.
CONSUMER_TRIGGERS = frozenset((detect.SQS, detect.SNS, detect.KINESIS, detect.DYNAMODB, detect.EVENTBRIDGE, detect.S3,
                               detect.CLOUDWATCH_EVENTS, detect.CLOUDWATCH_LOGS))
# OTel's faas.trigger vocabulary: datasource, http, pubsub, timer, other.
_FAAS_TRIGGER = {
    detect.API_GATEWAY: "http",
    detect.ALB: "http",
    detect.FUNCTION_URL: "http",
    detect.APPSYNC: "http",
    detect.SQS: "pubsub",
    detect.SNS: "pubsub",
    detect.KINESIS: "pubsub",
    detect.EVENTBRIDGE: "pubsub",
    detect.DYNAMODB: "datasource",
    detect.S3: "datasource",
    detect.CLOUDWATCH_EVENTS: "timer",
}
MESSAGING_SYSTEM = {detect.SQS: "aws_sqs", detect.SNS: "aws_sns", detect.KINESIS: "aws_kinesis",
                     detect.EVENTBRIDGE: "aws_eventbridge"}


def split_arn(invoked_arn: Optional[str]) -> Tuple[Optional[str], str, Optional[str]]:
    """``(function_arn, function_version, account_id)`` of an invoked function ARN, as Datadog
    tags them: lowercase ARN cut after the function name; version ``$LATEST`` when none."""
    if type(invoked_arn) is not str or not invoked_arn:
        return None, "$LATEST", None
    lowered = invoked_arn.lower()
    parts = lowered.split(":")
    account = invoked_arn.split(":")[4] if len(parts) > 4 and parts[4] else None
    if len(parts) > 7:
        return ":".join(parts[:7]), invoked_arn.split(":")[7], account
    return lowered, "$LATEST", account


# The invoked ARN and the function name are the same on every invocation of a process: the
# attributes they give are worked out once (one entry, replaced whole when either changes).
_function_entry: Tuple[Optional[str], Optional[str], Dict[str, str]] = (None, None, {})


def function_attributes(name: Optional[str], invoked_arn: Optional[str]) -> Dict[str, str]:
    """The function's own attributes: OTel's ``faas.name``, ``cloud.resource_id`` and
    ``cloud.account.id``, and Datadog's ``functionname``, ``resource_names``, ``function_arn`` and
    ``function_version``. The dict is shared: copy it, do not change it."""
    global _function_entry
    entry = _function_entry
    if entry[0] != name or entry[1] != invoked_arn:
        attributes: Dict[str, str] = {}
        if name:
            attributes["faas.name"] = name
            attributes["functionname"] = name.lower()
            attributes["resource_names"] = name
        if invoked_arn:
            function_arn, version, account = split_arn(invoked_arn)
            attributes["cloud.resource_id"] = invoked_arn
            if function_arn:
                attributes["function_arn"] = function_arn
            attributes["function_version"] = version
            if account:
                attributes["cloud.account.id"] = account
        entry = _function_entry = (name, invoked_arn, attributes)
    return entry[2]


def span_kind(trigger: Optional[str]) -> SpanKind:
    return SpanKind.CONSUMER if trigger in CONSUMER_TRIGGERS else SpanKind.SERVER


def start_attributes(
    lambda_context: Any,
    trigger: Optional[str],
    trigger_tags: Dict[str, str],
    cold_start: bool,
    proactive_init: bool,
    function_name: Optional[str],
    batch_size: int = 0,
) -> Dict[str, Any]:
    """The invocation span's attributes known at its start. Never raises on odd contexts."""
    attributes: Dict[str, Any] = {}
    # trigger tags first, so the function's own tags below win a clash
    for key, value in trigger_tags.items():
        if type(value) is str:
            attributes[key] = value
    request_id = context_str(lambda_context, "aws_request_id") or "unknown"
    invoked_arn = context_str(lambda_context, "invoked_function_arn")
    name = function_name or context_str(lambda_context, "function_name")
    attributes["faas.invocation_id"] = request_id
    attributes["request_id"] = request_id
    attributes["faas.coldstart"] = cold_start
    attributes["cold_start"] = "true" if cold_start else "false"
    if proactive_init:
        attributes["proactive_initialization"] = "true"
    if cold_start and restored_sandbox():
        # AWS's own name for this init (AWS_LAMBDA_INITIALIZATION_TYPE); Datadog's Python library
        # has no SnapStart tag of its own
        attributes["init_type"] = "snap-start"
    attributes["faas.trigger"] = _FAAS_TRIGGER.get(trigger or "", "other")
    attributes.update(function_attributes(name, invoked_arn))
    system = MESSAGING_SYSTEM.get(trigger or "")
    if system:
        attributes["messaging.system"] = system
        attributes["messaging.operation.type"] = "process"
        if batch_size > 1:
            attributes["messaging.batch.message_count"] = batch_size
    return attributes


def http_status_code(trigger: Optional[str], response: Any) -> Optional[str]:
    """The status code an HTTP trigger's response carries, as Datadog tags it (a string).

    None when the trigger is not HTTP. A missing response is a 502 (what API Gateway answers);
    a response that is not an object with ``statusCode`` counts as 200 (API Gateway's
    "simple response" format).
    """
    if trigger not in detect.HTTP_TRIGGERS:
        return None
    if response is None:
        return "502"
    try:
        if type(response) is dict:
            code = response.get("statusCode", 200)
        else:
            code = getattr(response, "status_code", 200)
        if type(code) is bool:
            return "200"
        if type(code) is int or (type(code) is str and code.isdigit() and len(code) <= 3):
            return str(int(code))
    except Exception:
        pass
    return "200"


def batch_size(event: Any) -> int:
    if type(event) is dict:
        records = event.get("Records")
        if type(records) is list:
            return len(records)
    return 0
