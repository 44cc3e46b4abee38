"""EventBridge: ``detail._datadog``, a JSON object (also inside an SQS body for EventBridge→SQS)."""

from __future__ import annotations

from typing import Any, Dict, Optional

from .common import DATADOG_KEY, loads_object


def detail_carrier(event: Any) -> Optional[Dict[str, Any]]:
    if type(event) is not dict:
        return None
    detail = event.get("detail")
    if type(detail) is not dict:
        return None
    return loads_object(detail.get(DATADOG_KEY))


def event_time(event: Dict[str, Any]) -> Any:
    return event.get("time")


def is_envelope(body: Dict[str, Any]) -> bool:
    """An EventBridge event JSON (as an SQS target receives it in the body)."""
    return type(body.get("detail")) is dict and bool(body.get("detail-type")) and bool(body.get("source"))
