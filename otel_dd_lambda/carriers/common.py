"""Decoding helpers shared by the carriers: bounded, defensive, no exceptions.

``_datadog`` payloads are small JSON objects; anything much larger is not ours, so it is not
parsed (an attacker could otherwise make every invocation parse megabytes).
"""

from __future__ import annotations

import binascii
import json
import logging
from base64 import b64decode
from typing import Any, Dict, Optional

logger = logging.getLogger("otel_dd_lambda.carriers")

MAX_DD_JSON = 8192  # a _datadog object is a few hundred bytes; larger is not a trace carrier
DATADOG_KEY = "_datadog"

_loads = json.loads


def loads_object(raw: Any, limit: int = MAX_DD_JSON) -> Optional[Dict[str, Any]]:
    """``raw`` (str/bytes JSON, or an already-decoded dict) as a dict, else None."""
    if type(raw) is dict:
        return raw
    if not isinstance(raw, (str, bytes, bytearray)) or not raw or len(raw) > limit:
        return None
    try:
        value = _loads(raw)
    except (ValueError, TypeError, RecursionError):
        logger.debug("_datadog is not valid JSON: ignored")
        return None
    return value if type(value) is dict else None


def b64_bytes(raw: Any, limit: int = MAX_DD_JSON * 2) -> Optional[bytes]:
    """The bytes of a base64 string (or the bytes themselves, as boto3 hands them), else None."""
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    if type(raw) is not str or not raw or len(raw) > limit:
        return None
    try:
        return b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        logger.debug("base64 carrier malformed: ignored")
        return None


def dict_at(obj: Any, key: str) -> Optional[Dict[str, Any]]:
    """``obj[key]`` when ``obj`` is a dict and that value is a dict."""
    if type(obj) is not dict:
        return None
    value = obj.get(key)
    return value if type(value) is dict else None


def first_record(event: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    records = event.get("Records")
    if type(records) is list and records and type(records[0]) is dict:
        return records[0]
    return None
