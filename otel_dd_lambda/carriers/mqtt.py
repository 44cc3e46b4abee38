"""MQTT: v5 user properties (``_datadog`` JSON, or the header keys themselves), else ``_datadog``
in a JSON payload (what an AWS IoT rule hands to Lambda as the event itself).

Getter/Setter over a paho-mqtt ``Properties`` object, usable with any OTel propagator.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from opentelemetry.propagators.textmap import Getter, Setter

from .common import DATADOG_KEY, MAX_DD_JSON, loads_object

MAX_PAYLOAD = 256 * 1024  # a payload this large is not parsed just to look for a context


def user_properties(properties: Any) -> List[Any]:
    try:
        value = getattr(properties, "UserProperty", None)
    except Exception:
        return []
    return value if type(value) is list else []


class UserPropertiesGetter(Getter[Any]):
    """Reads MQTT v5 user properties (a list of ``(name, value)`` pairs), first value wins."""

    def get(self, carrier: Any, key: str) -> Optional[List[str]]:
        for item in user_properties(carrier):
            if type(item) is tuple and len(item) == 2 and item[0] == key:
                return [item[1]]
        return None

    def keys(self, carrier: Any) -> List[str]:
        return [item[0] for item in user_properties(carrier) if type(item) is tuple and len(item) == 2]


class UserPropertiesSetter(Setter[Any]):
    """Appends a user property (paho appends on assignment to ``UserProperty``)."""

    def set(self, carrier: Any, key: str, value: str) -> None:
        carrier.UserProperty = (key, value)


def properties_carrier(properties: Any) -> Optional[Dict[str, Any]]:
    headers: Dict[str, Any] = {}
    for item in user_properties(properties):
        if type(item) is not tuple or len(item) != 2 or type(item[0]) is not str:
            continue
        name, value = item
        if name == DATADOG_KEY:
            found = loads_object(value, MAX_DD_JSON)
            if found is not None:
                return found
        elif name not in headers:
            headers[name] = value
    return headers or None


def payload_carrier(payload: Any) -> Optional[Dict[str, Any]]:
    if isinstance(payload, (bytes, bytearray)) and DATADOG_KEY.encode() not in payload:
        return None
    obj = loads_object(payload, MAX_PAYLOAD)
    return loads_object(obj.get(DATADOG_KEY)) if obj else None


def message_carrier(message: Any) -> Optional[Dict[str, Any]]:
    """The carrier of a paho-mqtt ``MQTTMessage``: its properties, else its payload."""
    try:
        properties = getattr(message, "properties", None)
        payload = getattr(message, "payload", None)
    except Exception:
        return None
    return (properties_carrier(properties) if properties is not None else None) or payload_carrier(payload)


def is_message(event: Any) -> bool:
    return type(event) is not dict and hasattr(event, "payload") and hasattr(event, "topic")
