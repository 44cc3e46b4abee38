"""SNS: ``Sns.MessageAttributes._datadog`` = ``{"Type": "String"|"Binary", "Value": ...}``.

Binary values are base64 in the Lambda event (publishers use Binary so that subscription filter
policies, which only see String attributes, keep working). The same shape appears in the SNS
notification JSON that an SQS queue receives without raw message delivery.
"""

from __future__ import annotations

import binascii
from typing import Any, Dict, Optional, Tuple

from .common import _JSON_SPACE, _NONE, DATADOG_KEY, MAX_DD_JSON, _a2b_base64, _scan_once, b64_object, loads_object, logger


def message_carrier(message: Any) -> Optional[Dict[str, Any]]:
    """The ``_datadog`` object of an SNS message (the record's ``Sns`` or a notification JSON)."""
    attrs = message.get("MessageAttributes") if type(message) is dict else None
    dd = attrs.get(DATADOG_KEY) if type(attrs) is dict else None
    if type(dd) is not dict:
        return None
    kind = dd.get("Type")
    if kind == "String":
        return loads_object(dd.get("Value"))
    if kind == "Binary":
        return b64_object(dd.get("Value"))
    logger.debug("SNS _datadog attribute of type %r: ignored", str(kind)[:32])
    return None


def record_carrier(record: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    # message_carrier(record.get("Sns")), inlined for the Binary attribute (what publishers use).
    try:  # (event JSON holds dicts, lists, str, numbers: a .get on a non-dict raises AttributeError)
        dd = record.get("Sns", _NONE).get("MessageAttributes", _NONE).get(DATADOG_KEY, _NONE)
        raw = dd.get("Value") if dd.get("Type") == "Binary" else None
    except Exception:  # not the usual shape: the general reader decides (and logs)
        raw = None
    if type(raw) is str and 1 < len(raw) <= MAX_DD_JSON * 2:
        # b64_object's path for what publishers send, inlined: the same calls and checks.
        try:
            data = _a2b_base64(raw, strict_mode=True)
        except (binascii.Error, ValueError):
            logger.debug("base64 carrier malformed: ignored")
            return None
        if 1 < len(data) <= MAX_DD_JSON and data[0] == 0x7B and data[1]:
            try:
                text = data.decode("utf-8", "surrogatepass")
                value, end = _scan_once(text, 0)
                if end != len(text) and text[end:].strip(_JSON_SPACE):
                    raise ValueError("extra data after the JSON object")
            except (ValueError, TypeError, RecursionError, StopIteration):
                logger.debug("_datadog is not valid JSON: ignored")
                return None
            return value if type(value) is dict else None
        return loads_object(data)
    return message_carrier(record.get("Sns"))


def message_id(record: Dict[str, Any]) -> Optional[str]:
    sns = record.get("Sns")
    value = sns.get("MessageId") if type(sns) is dict else None
    return value if type(value) is str else None


def timestamp(record: Dict[str, Any]) -> Any:
    sns = record.get("Sns")
    return sns.get("Timestamp") if type(sns) is dict else None


def is_notification(body: Dict[str, Any]) -> bool:
    """An SNS notification delivered to SQS without raw message delivery."""
    return body.get("Type") == "Notification" and "TopicArn" in body


def meta(record: Dict[str, Any]) -> Tuple[Optional[str], Any]:
    """``(message_id(record), timestamp(record))`` in one call (the first record's, per event)."""
    sns = record.get("Sns")
    if type(sns) is not dict:
        return None, None
    value = sns.get("MessageId")
    return value if type(value) is str else None, sns.get("Timestamp")
