"""SQS: ``messageAttributes._datadog`` (String or Binary), the body of SNS→SQS and EventBridge→SQS
deliveries, then the ``AWSTraceHeader`` system attribute (X-Ray format) as a fallback.

A body is parsed only when it mentions ``_datadog``: bodies can be up to 1 MiB and most carry none.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from . import eventbridge, sns
from .common import DATADOG_KEY, b64_object, loads_object, logger

MAX_BODY = 1024 * 1024 + 4096  # SQS's largest message, with room for JSON escaping


def attribute_carrier(record: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    attributes = record.get("messageAttributes")
    dd = attributes.get(DATADOG_KEY) if type(attributes) is dict else None
    if type(dd) is not dict:
        return None
    kind = dd.get("dataType")
    if kind == "String":
        return loads_object(dd.get("stringValue"))
    if kind == "Binary":
        return b64_object(dd.get("binaryValue"))
    logger.debug("SQS _datadog attribute of type %r: ignored", str(kind)[:32])
    return None


def attribute_key(record: Dict[str, Any]) -> Optional[Tuple[bool, str]]:
    """The ``_datadog`` attribute as ``(is String, text)`` when it is a String or Binary one, else
    None: the records of one ``SendMessageBatch`` carry the same value, so a batch parses and
    resolves each distinct value once (``common.attribute_key_carrier`` reads it as ``attribute_carrier`` does)."""
    attributes = record.get("messageAttributes")
    dd = attributes.get(DATADOG_KEY) if type(attributes) is dict else None
    if type(dd) is not dict:
        return None
    kind = dd.get("dataType")
    value = dd.get("stringValue") if kind == "String" else dd.get("binaryValue") if kind == "Binary" else None
    return (kind == "String", value) if type(value) is str else None


def body_carrier(record: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The ``_datadog`` of an SNS notification or EventBridge event in the SQS body."""
    body = record.get("body")
    if type(body) is not str or DATADOG_KEY not in body:
        return None
    obj = loads_object(body, MAX_BODY)
    if obj is None:
        return None
    if sns.is_notification(obj):
        return sns.message_carrier(obj)
    if eventbridge.is_envelope(obj):
        return eventbridge.detail_carrier(obj)
    return None


def record_carrier(record: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    carrier = attribute_carrier(record) or body_carrier(record)
    if carrier is not None:
        return carrier
    system = record.get("attributes")
    header = system.get("AWSTraceHeader") if type(system) is dict else None
    if type(header) is str:
        return {"x-amzn-trace-id": header}
    return None


def message_id(record: Dict[str, Any]) -> Optional[str]:
    value = record.get("messageId")
    return value if type(value) is str else None


def sent_timestamp_ms(record: Dict[str, Any]) -> Any:
    system = record.get("attributes")
    return system.get("SentTimestamp") if type(system) is dict else None
