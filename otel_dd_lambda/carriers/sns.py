"""SNS: ``Sns.MessageAttributes._datadog`` = ``{"Type": "String"|"Binary", "Value": ...}``.

Binary values are base64 in the Lambda event (publishers use Binary so that subscription filter
policies, which only see String attributes, keep working). The same shape appears in the SNS
notification JSON that an SQS queue receives without raw message delivery.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from .common import DATADOG_KEY, b64_object, loads_object, logger


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
    return message_carrier(record.get("Sns"))


def attribute_key(record: Dict[str, Any]) -> Optional[Tuple[bool, str]]:
    """The record's ``_datadog`` attribute as ``(is String, text)`` when it is a String or Binary one,
    else None (see ``sqs.attribute_key``; ``common.attribute_key_carrier`` reads it as ``message_carrier`` does)."""
    sns = record.get("Sns")
    attrs = sns.get("MessageAttributes") if type(sns) is dict else None
    dd = attrs.get(DATADOG_KEY) if type(attrs) is dict else None
    if type(dd) is not dict:
        return None
    kind, value = dd.get("Type"), dd.get("Value")
    return (kind == "String", value) if (kind == "String" or kind == "Binary") and type(value) is str else None


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

