"""An API Gateway Lambda authorizer's trace context, written by the authorizer and read downstream.

An instrumented authorizer that allows a request puts ``_datadog`` (base64 JSON: the trace
headers of the span standing for the request, when that span ended, and the request id it
authorized) into its response's ``context`` (``DD_ENCODE_AUTHORIZER_CONTEXT``, default on).
API Gateway hands that context to the function behind the API: REST and websocket APIs in
``requestContext.authorizer._datadog``, HTTP APIs in ``requestContext.authorizer.lambda._datadog``.
API Gateway caches authorizer results, and a cached result still carries the ``_datadog`` of the
*first* request: it applies only when ``integrationLatency > 0`` (the authorizer really ran for
this request) or its ``x-datadog-authorizing-requestid`` equals this request's
``requestContext.requestId``.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, Dict, Optional

from .common import DATADOG_KEY, b64_object, dict_at, logger

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

AUTHORIZING_REQUEST_ID = "x-datadog-authorizing-requestid"
PARENT_SPAN_FINISH_TIME = "x-datadog-parent-span-finish-time"  # ns since the epoch


def rest_headers(event: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """A REST or websocket API's authorizer context."""
    return _injected_headers(event, False)


def http_api_headers(event: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """An HTTP API's authorizer context (under ``lambda``)."""
    return _injected_headers(event, True)


def _injected_headers(event: Dict[str, Any], http_api: bool) -> Optional[Dict[str, Any]]:
    ctx = dict_at(event, "requestContext")
    authorizer = dict_at(ctx, "authorizer")
    if authorizer is None:
        return None
    holder = dict_at(authorizer, "lambda") if http_api else authorizer
    raw = holder.get(DATADOG_KEY) if holder else None
    if raw is None:
        return None
    data = b64_object(raw)
    if data is None:
        logger.debug("authorizer _datadog is not base64 JSON: ignored")
        return None
    latency = authorizer.get("integrationLatency")
    if (type(latency) is int or type(latency) is float) and latency > 0:
        return data
    request_id = ctx.get("requestId") if ctx is not None else None
    if request_id is not None and request_id == data.get(AUTHORIZING_REQUEST_ID):
        return data
    logger.debug("authorizer _datadog is from a cached authorizer result: ignored")
    return None


def is_authorizer_response(response: Dict[str, Any]) -> bool:
    """An authorizer's answer: an IAM policy (``principalId`` and ``policyDocument``, REST and HTTP
    APIs) or an HTTP API's simple response (``isAuthorized``)."""
    if response.get("principalId") and response.get("policyDocument"):
        return True
    return type(response.get("isAuthorized")) is bool


def encode_context(response: Dict[str, Any], span_context: SpanContext, finish_ns: int,
                   request_id: Any) -> bool:
    """Put ``_datadog`` into the authorizer ``response``'s ``context`` (made when absent). False
    when the context is not an object (nothing is changed) or the span context is invalid."""
    context = response.get("context")
    if context is None:
        context = {}
    elif type(context) is not dict:
        logger.debug("authorizer response context is not an object: no trace context added")
        return False
    if not span_context.is_valid:
        return False
    from ..injection import message_headers  # loaded by authorizer functions only

    headers: Dict[str, Any] = dict(message_headers(span_context)[0])
    headers[PARENT_SPAN_FINISH_TIME] = int(finish_ns)
    if type(request_id) is str and request_id:
        headers[AUTHORIZING_REQUEST_ID] = request_id
    text = json.dumps(headers, separators=(",", ":"))
    context[DATADOG_KEY] = base64.b64encode(text.encode()).decode("ascii")
    response["context"] = context
    return True
