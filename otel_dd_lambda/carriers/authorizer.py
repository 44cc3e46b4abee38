"""The ``_datadog`` that an instrumented API Gateway Lambda authorizer added to its response.

REST and websocket APIs deliver it in ``requestContext.authorizer._datadog``, HTTP APIs in
``requestContext.authorizer.lambda._datadog``, as base64 JSON. API Gateway caches authorizer
results, and a cached result still carries the ``_datadog`` of the *first* request: it applies
only when ``integrationLatency > 0`` (the authorizer really ran for this request) or its
``x-datadog-authorizing-requestid`` equals this request's ``requestContext.requestId``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from .common import DATADOG_KEY, b64_object, dict_at, logger

AUTHORIZING_REQUEST_ID = "x-datadog-authorizing-requestid"


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
