"""Trigger tags in Datadog's vocabulary: ``function_trigger.event_source``,
``function_trigger.event_source_arn`` and, for HTTP triggers, ``http.*``.

Where the event has no ARN, it is built as Datadog does, from the function's own region and
account (``lambda_context.invoked_function_arn``, else ``AWS_REGION``). Built only when asked for.
Each trigger's own ARN rule is one function here, named by its row in ``triggers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from ..config import KEEP_URL_QUERY_ENV, env_cached, function_name, keep_url_query, region
from ..lambda_context import context_str
from ..limits import path_tag, url_tag
from . import detect, http, stepfunctions
from .common import first_record, gunzip_b64_prefix, json_member, logger

if TYPE_CHECKING:
    from .triggers import Trigger

MAX_AWSLOGS_PREFIX = 64 * 1024  # bytes of awslogs.data inflated to find the log group

if TYPE_CHECKING:  # annotations only: subscripting typing generics at import costs cold-start time
    # (event, its first record or None, lambda_context) -> the ARN, for an event that names none itself
    ArnRule = Callable[[Dict[str, Any], Optional[Dict[str, Any]], Any], Optional[str]]


def _partition(region: str) -> str:
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


def _function_arn_parts(lambda_context: Any) -> List[str]:
    arn = context_str(lambda_context, "invoked_function_arn")
    global _last_arn
    if arn is not None:
        last = _last_arn  # one read: another thread may replace it meanwhile
        if arn == last[0]:
            return last[1]  # a sandbox's function ARN is the same on every invocation
        if arn.count(":") >= 4:
            parts = arn.split(":")
            _last_arn = (arn, parts)  # one atomic store
            return parts
    return ["arn", "aws", "lambda", region(), "", "function", function_name()]


# The last function ARN split, and its parts (shared: callers only read them).
_last_arn: Tuple[Optional[str], List[str]] = (None, [])
# OTEL_DD_LAMBDA_KEEP_URL_QUERY, read again only when it changes (every HTTP event reads it).
_keep_url_query = env_cached((KEEP_URL_QUERY_ENV,), keep_url_query)


def _s(value: Any) -> Optional[str]:
    return value if type(value) is str and value else None


def _dict(value: Any) -> Dict[str, Any]:
    return value if type(value) is dict else {}


def s3_bucket_arn(event: Dict[str, Any], record: Optional[Dict[str, Any]], lambda_context: Any) -> Optional[str]:
    bucket = _dict(_dict(record).get("s3")).get("bucket")
    return _s(bucket.get("arn")) if type(bucket) is dict else None


def sns_topic_arn(event: Dict[str, Any], record: Optional[Dict[str, Any]], lambda_context: Any) -> Optional[str]:
    sns = _dict(record).get("Sns")
    return _s(sns.get("TopicArn")) if type(sns) is dict else None


def cloudfront_arn(event: Dict[str, Any], record: Optional[Dict[str, Any]], lambda_context: Any) -> Optional[str]:
    parts = _function_arn_parts(lambda_context)
    cf = _dict(record).get("cf")
    config = cf.get("config") if type(cf) is dict else None
    distribution = config.get("distributionId") if type(config) is dict else None
    return "arn:%s:cloudfront::%s:distribution/%s" % (_partition(parts[3]), parts[4], distribution)


def function_url_arn(event: Dict[str, Any], record: Optional[Dict[str, Any]], lambda_context: Any) -> Optional[str]:
    parts = _function_arn_parts(lambda_context)
    arn = "arn:aws:lambda:%s:%s:url:%s" % (parts[3], parts[4], parts[6] if len(parts) > 6 else "")
    return arn + ":" + parts[7] if len(parts) > 7 else arn


def api_gateway_arn(event: Dict[str, Any], record: Optional[Dict[str, Any]], lambda_context: Any) -> Optional[str]:
    region = _function_arn_parts(lambda_context)[3]
    ctx = _dict(event.get("requestContext"))
    # "%s" of a missing id gives "None", as the reference writes it (and Datadog indexes it)
    return "arn:%s:apigateway:%s::/restapis/%s/stages/%s" % (
        _partition(region), region, ctx.get("apiId"), ctx.get("stage"))


def alb_target_group_arn(event: Dict[str, Any], record: Optional[Dict[str, Any]], lambda_context: Any) -> Optional[str]:
    elb = _dict(event.get("requestContext")).get("elb")
    return _s(elb.get("targetGroupArn")) if type(elb) is dict else None


def log_group_arn(event: Dict[str, Any], record: Optional[Dict[str, Any]], lambda_context: Any) -> Optional[str]:
    parts = _function_arn_parts(lambda_context)
    return "arn:%s:logs:%s:%s:log-group:%s" % (_partition(parts[3]), parts[3], parts[4], _log_group(event))


def first_resource_arn(event: Dict[str, Any], record: Optional[Dict[str, Any]], lambda_context: Any) -> Optional[str]:
    resources = event.get("resources")
    return _s(resources[0]) if type(resources) is list and resources else None


def state_machine_arn(event: Dict[str, Any], record: Optional[Dict[str, Any]], lambda_context: Any) -> Optional[str]:
    return stepfunctions.state_machine_arn(stepfunctions.context_object(event))


def event_source_arn(rule: Optional[ArnRule], event: Dict[str, Any], lambda_context: Any) -> Optional[str]:
    """The ARN the event (or its first record) names, else the trigger's own ``rule``."""
    record = first_record(event)
    arn = (record or event).get("eventSourceARN") or (record or event).get("eventSourceArn")
    if arn:
        return _s(arn)
    return rule(event, record, lambda_context) if rule is not None else None


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
        alb_path = _s(path)
        if alb_path:
            tags["http.route"] = path_tag(alb_path)
    else:
        domain = _s(ctx.get("domainName"))
        if domain:
            url = "https://" + domain
        path, method = ctx.get("path"), ctx.get("httpMethod")
        v2 = ctx.get("http")
        if event.get("version") == "2.0" and type(v2) is dict and v2:
            path, method = v2.get("path"), v2.get("method")
    keep = _keep_url_query()
    if url is not None:
        url_path = _s(path)
        tags["http.url"] = url_tag(url + url_path if url_path else url, keep)
    method = _s(method)
    if method:
        tags["http.method"] = path_tag(method)
    referer = http.first_value(hdrs, "referer")
    if referer:
        tags["http.referer"] = url_tag(referer, keep)
    route = _s(event.get("routeKey") or event.get("resource"))
    if route:
        tags["http.route"] = path_tag(route.split(" ")[-1])
    return tags


def trigger_tags(row: Optional[Trigger], event: Any, lambda_context: Any) -> Dict[str, str]:
    """The tags of an event of trigger ``row`` (``triggers.row_of``); {} for an untagged one."""
    tags: Dict[str, str] = {}
    if row is None or not row.tagged or type(event) is not dict:
        return tags  # Datadog's library tags neither unknown events nor AppSync
    try:
        tags["function_trigger.event_source"] = row.name
        arn = event_source_arn(row.arn, event, lambda_context)
        if arn:
            tags["function_trigger.event_source_arn"] = arn
        if row.http:
            tags.update(http_tags(row.name, event))
    except Exception:
        logger.debug("trigger tags incomplete for a malformed %s event", row.name, exc_info=True)
    return tags
