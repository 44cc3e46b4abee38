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
    if value is None and _spelled_otherwise(mapping, name):
        for key, val in mapping.items():
            if type(key) is str and key.lower() == name:
                value = val
                break
    if type(value) is list:
        value = value[0] if value else None
    return value if type(value) is str and value else None


def _spelled_otherwise(mapping: Dict[str, Any], name: str) -> bool:
    """Whether a key of ``mapping`` may be ``name`` in another case: False when ``name`` is not
    even a substring of the lowered keys. A join and a lower in C cost a fraction of a Python
    loop lowering every key (API Gateway REST keeps the client's casing, and most requests
    carry no ``Referer``: the loop ran on every such event). Keys that are not all ``str``: the
    loop decides."""
    try:
        keys = "\n".join(mapping)
    except Exception:  # a key that is not a str (or a hostile mapping): the loop decides
        return True
    return name in keys.lower()


def request_time_ms(event: Dict[str, Any]) -> Any:
    """API Gateway's request time: ``requestTimeEpoch`` (REST, websocket) or ``timeEpoch`` (v2)."""
    ctx = event.get("requestContext")
    if type(ctx) is not dict:
        return None
    value = ctx.get("requestTimeEpoch")
    return value if value is not None else ctx.get("timeEpoch")
