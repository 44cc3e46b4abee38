"""Trigger tags in Datadog's vocabulary: ``function_trigger.event_source``,
``function_trigger.event_source_arn`` and, for HTTP triggers, ``http.*``.

Where the event has no ARN, it is built as Datadog does, from the function's own region and
account (``lambda_context.invoked_function_arn``, else ``AWS_REGION``). Built only when asked for.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ..config import function_name, keep_url_query, region
from ..lambda_context import context_str
from ..limits import path_tag, url_tag
from . import detect, http, stepfunctions
from .common import first_record, gunzip_b64_prefix, json_member, logger

MAX_AWSLOGS_PREFIX = 64 * 1024  # bytes of awslogs.data inflated to find the log group


def _partition(region: str) -> str:
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


def _function_arn_parts(lambda_context: Any):
    arn = context_str(lambda_context, "invoked_function_arn")
    if arn is not None and arn.count(":") >= 4:
        return arn.split(":")
    return ["arn", "aws", "lambda", region(), "", "function", function_name()]


def _s(value: Any) -> Optional[str]:
    return value if type(value) is str and value else None


def event_source_arn(trigger: str, event: Dict[str, Any], lambda_context: Any) -> Optional[str]:
    record = first_record(event)
    if record is not None:
        arn = record.get("eventSourceARN") or record.get("eventSourceArn")
    else:
        arn = event.get("eventSourceARN") or event.get("eventSourceArn")
    if arn:
        return _s(arn)
    parts = _function_arn_parts(lambda_context)
    region, account = parts[3], parts[4]
    partition = _partition(region)
    if trigger == detect.S3:
        bucket = (record or {}).get("s3")
        bucket = bucket.get("bucket") if type(bucket) is dict else None
        return _s(bucket.get("arn")) if type(bucket) is dict else None
    if trigger == detect.SNS:
        sns = (record or {}).get("Sns")
        return _s(sns.get("TopicArn")) if type(sns) is dict else None
    if trigger == detect.CLOUDFRONT:
        cf = (record or {}).get("cf")
        config = cf.get("config") if type(cf) is dict else None
        distribution = config.get("distributionId") if type(config) is dict else None
        return "arn:%s:cloudfront::%s:distribution/%s" % (partition, account, distribution)
    if trigger == detect.FUNCTION_URL:
        arn = "arn:aws:lambda:%s:%s:url:%s" % (region, account, parts[6] if len(parts) > 6 else "")
        return arn + ":" + parts[7] if len(parts) > 7 else arn
    if trigger == detect.API_GATEWAY:
        ctx = event.get("requestContext")
        # "%s" of a missing id gives "None", as the reference writes it (and Datadog indexes it)
        return "arn:%s:apigateway:%s::/restapis/%s/stages/%s" % (partition, region, ctx.get("apiId"), ctx.get("stage"))
    if trigger == detect.ALB:
        elb = event["requestContext"].get("elb")
        return _s(elb.get("targetGroupArn")) if type(elb) is dict else None
    if trigger == detect.CLOUDWATCH_LOGS:
        return "arn:%s:logs:%s:%s:log-group:%s" % (partition, region, account, _log_group(event))
    if trigger == detect.CLOUDWATCH_EVENTS:
        resources = event.get("resources")
        return _s(resources[0]) if type(resources) is list and resources else None
    if trigger == detect.STATES:
        return stepfunctions.state_machine_arn(stepfunctions.context_object(event))
    return None


def _log_group(event: Dict[str, Any]) -> str:
    # Only the head of the data is inflated: CloudWatch Logs writes logGroup third, after
    # messageType and owner (short strings), and a log group name is at most 512 characters, so
    # 64 KiB holds it with room to spare. Inflating all of it (the reference does) lets a 1.3 MB
    # gzip bomb cost 1 GB of memory; here any data costs at most this prefix.
    awslogs = event.get("awslogs")
    data = gunzip_b64_prefix(awslogs.get("data") if type(awslogs) is dict else None, MAX_AWSLOGS_PREFIX)
    group = json_member(data.decode("utf-8", "replace"), "logGroup") if data else None
    if type(group) is str:
        return group
    logger.debug("CloudWatch Logs data unreadable: log group unknown")
    return "cloudwatch"


def http_tags(trigger: str, event: Dict[str, Any]) -> Dict[str, str]:
    """``http.*`` tags; URLs without query or fragment unless ``OTEL_DD_LAMBDA_KEEP_URL_QUERY``
    (``limits.url_tag``), every value within Datadog's tag limit."""
    tags = {"span.kind": "server"}
    ctx = event.get("requestContext")
    ctx = ctx if type(ctx) is dict else {}
    path, method = event.get("path"), event.get("httpMethod")
    hdrs = http.headers(event)
    url = None
    if trigger == detect.ALB:
        host = http.first_value(hdrs, "host")
        if host:
            url = (http.first_value(hdrs, "x-forwarded-proto") or "http") + "://" + host
        agent = http.first_value(hdrs, "user-agent")
        if agent:
            tags["http.useragent"] = path_tag(agent)
        if _s(path):
            tags["http.route"] = path_tag(path)
    else:
        domain = _s(ctx.get("domainName"))
        if domain:
            url = "https://" + domain
        path, method = ctx.get("path"), ctx.get("httpMethod")
        v2 = ctx.get("http")
        if event.get("version") == "2.0" and type(v2) is dict and v2:
            path, method = v2.get("path"), v2.get("method")
    keep = keep_url_query()
    if url is not None:
        tags["http.url"] = url_tag(url + path if _s(path) else url, keep)
    if _s(method):
        tags["http.method"] = path_tag(method)
    referer = http.first_value(hdrs, "referer")
    if referer:
        tags["http.referer"] = url_tag(referer, keep)
    route = event.get("routeKey") or event.get("resource")
    if _s(route):
        tags["http.route"] = path_tag(route.split(" ")[-1])
    return tags


def trigger_tags(trigger: Optional[str], event: Any, lambda_context: Any) -> Dict[str, str]:
    tags: Dict[str, str] = {}
    if trigger is None or trigger in detect.UNTAGGED or type(event) is not dict:
        return tags  # Datadog's library tags neither unknown events nor AppSync
    try:
        tags["function_trigger.event_source"] = trigger
        arn = event_source_arn(trigger, event, lambda_context)
        if arn:
            tags["function_trigger.event_source_arn"] = arn
        if trigger in detect.HTTP_TRIGGERS:
            tags.update(http_tags(trigger, event))
    except Exception:
        logger.debug("trigger tags incomplete for a malformed %s event", trigger, exc_info=True)
    return tags
