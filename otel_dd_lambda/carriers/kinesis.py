"""Kinesis: ``kinesis.data`` is base64 of the producer's bytes; a JSON object with a top-level
``_datadog`` carries the context. Decoded as UTF-8 (any text, not only ASCII)."""

from __future__ import annotations

from typing import Any, Dict, Optional

from .common import DATADOG_KEY, b64_bytes, loads_object

MAX_DATA = 1024 * 1024  # Kinesis's largest record
_KEY = DATADOG_KEY.encode()


def record_carrier(record: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    kinesis = record.get("kinesis")
    if type(kinesis) is not dict:
        return None
    data = b64_bytes(kinesis.get("data"), MAX_DATA * 4 // 3 + 4)
    if not data or _KEY not in data:
        return None
    obj = loads_object(data, MAX_DATA)  # json.loads detects UTF-8/16/32 in bytes itself
    return loads_object(obj.get(DATADOG_KEY)) if obj else None


def sequence_number(record: Dict[str, Any]) -> Optional[str]:
    kinesis = record.get("kinesis")
    value = kinesis.get("sequenceNumber") if type(kinesis) is dict else None
    return value if type(value) is str else None


def arrival_seconds(record: Dict[str, Any]) -> Any:
    kinesis = record.get("kinesis")
    return kinesis.get("approximateArrivalTimestamp") if type(kinesis) is dict else None
