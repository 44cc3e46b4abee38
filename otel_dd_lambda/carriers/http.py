"""HTTP triggers: API Gateway REST / HTTP API / websocket, ALB, Lambda Function URL.

The context is in ``headers``; an ALB target group with multi-value headers delivers only
``multiValueHeaders`` (lists), whose first value counts. The header reader lowers names once and
takes the first element of a list, so either mapping can be handed to it as is.
"""

from __future__ import annotations

from typing import Any, Dict, Optional


def headers(event: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    value = event.get("headers")
    if type(value) is dict and value:
        return value
    value = event.get("multiValueHeaders")
    return value if type(value) is dict and value else None


def first_value(mapping: Optional[Dict[str, Any]], name: str) -> Optional[str]:
    """A header's first value, matched without case (for tags, not for trace context)."""
    if not mapping:
        return None
    value = mapping.get(name)
    if value is None:
        for key, val in mapping.items():
            if type(key) is str and key.lower() == name:
                value = val
                break
    if type(value) is list:
        value = value[0] if value else None
    return value if type(value) is str and value else None


def request_time_ms(event: Dict[str, Any]) -> Any:
    """API Gateway's request time: ``requestTimeEpoch`` (REST, websocket) or ``timeEpoch`` (v2)."""
    ctx = event.get("requestContext")
    if type(ctx) is not dict:
        return None
    value = ctx.get("requestTimeEpoch")
    return value if value is not None else ctx.get("timeEpoch")
