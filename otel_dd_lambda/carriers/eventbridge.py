"""EventBridge: ``detail._datadog`` (also inside an SQS body for EventBridge→SQS).

``_datadog`` is read as a JSON object, a JSON string, or base64 JSON (what an EventBridge Pipe or an
input transformer may turn it into), as Datadog's Lambda extension reads it. Datadog's Go, Java,
.NET and JS tracers add ``x-datadog-start-time`` (epoch ms when the event was put) and
``x-datadog-resource-name`` (the bus name) to it; ``injection`` does too.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from .common import DATADOG_KEY, b64_object, loads_object

START_TIME = "x-datadog-start-time"
RESOURCE_NAME = "x-datadog-resource-name"


def datadog_object(raw: Any) -> Optional[Dict[str, Any]]:
    """``detail._datadog`` as a dict: an object, JSON text, or base64 JSON; else None."""
    if type(raw) is str and raw and raw[0] != "{" and raw.lstrip(" \t\n\r")[:1] != "{":
        return b64_object(raw)  # base64 never starts with "{" or whitespace
    return loads_object(raw)


def detail_carrier(event: Any) -> Optional[Dict[str, Any]]:
    if type(event) is not dict:
        return None
    detail = event.get("detail")
    if type(detail) is not dict:
        return None
    return datadog_object(detail.get(DATADOG_KEY))


def event_time(event: Dict[str, Any]) -> Any:
    return event.get("time")


def start_time_ms(event: Dict[str, Any]) -> Any:
    """``x-datadog-start-time`` of ``detail._datadog`` (ms, as text), else None: more precise than
    ``time``, which has whole seconds."""
    carrier = detail_carrier(event)
    return carrier.get(START_TIME) if carrier is not None else None


def resource_name(event: Dict[str, Any]) -> Optional[str]:
    """``x-datadog-resource-name`` of ``detail._datadog`` (the bus the producer put the event on),
    else None. Datadog's extension names the inferred span's service and resource after it."""
    carrier = detail_carrier(event)
    value = carrier.get(RESOURCE_NAME) if carrier is not None else None
    return value if type(value) is str and value else None


def is_envelope(body: Dict[str, Any]) -> bool:
    """An EventBridge event JSON (as an SQS target receives it in the body)."""
    return type(body.get("detail")) is dict and bool(body.get("detail-type")) and bool(body.get("source"))
