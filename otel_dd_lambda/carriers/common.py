"""Decoding helpers shared by the carriers: bounded, defensive, no exceptions.

``_datadog`` payloads are small JSON objects; anything much larger is not ours, so it is not
parsed (an attacker could otherwise make every invocation parse megabytes).
"""

from __future__ import annotations

import binascii
import functools
import json
import json.scanner
import logging
import sys
from base64 import b64decode
from typing import Any, Dict, Optional

logger = logging.getLogger("otel_dd_lambda.carriers")

MAX_DD_JSON = 8192  # a _datadog object is a few hundred bytes; larger is not a trace carrier
DATADOG_KEY = "_datadog"
_NONE: Dict[str, Any] = {}  # the default of chained .get()s over event JSON (never written)

_loads = json.loads
# json.loads's own scanner (the C one when available). json.loads adds three Python layers
# (type checks, encoding detection, leading-whitespace regex) that cost as much as scanning a
# _datadog object; for text that starts with "{" (what every producer writes) they do nothing.
_scan_once = json.scanner.make_scanner(json.JSONDecoder())
_JSON_SPACE = " \t\n\r"


def loads_object(raw: Any, limit: int = MAX_DD_JSON) -> Optional[Dict[str, Any]]:
    """``raw`` (str/bytes JSON, or an already-decoded dict) as a dict, else None."""
    if type(raw) is dict:
        return raw
    if not isinstance(raw, (str, bytes, bytearray)) or not raw or len(raw) > limit:
        return None
    try:
        if type(raw) is bytes and raw[0] == 0x7B and raw[1:2] != b"\0":
            # "{" then a non-NUL byte: json.loads would detect UTF-8 (not UTF-16/32), decode so
            raw = raw.decode("utf-8", "surrogatepass")
        if type(raw) is str and raw[0] == "{":
            value, end = _scan_once(raw, 0)  # raises what json.loads raises (or StopIteration)
            if end != len(raw) and raw[end:].strip(_JSON_SPACE):
                raise ValueError("extra data after the JSON object")
        else:
            value = _loads(raw)
    except (ValueError, TypeError, RecursionError, StopIteration):
        logger.debug("_datadog is not valid JSON: ignored")
        return None
    return value if type(value) is dict else None


if sys.version_info >= (3, 11):
    # What b64decode(raw, validate=True) calls, without its two Python-level layers.
    _a2b_base64 = binascii.a2b_base64
    _b64decode_strict = functools.partial(binascii.a2b_base64, strict_mode=True)
else:  # pragma: no cover - strict_mode is new in 3.11

    def _a2b_base64(data: Any, strict_mode: bool = False) -> bytes:
        return b64decode(data, validate=strict_mode)

    _b64decode_strict = functools.partial(b64decode, validate=True)


def b64_bytes(raw: Any, limit: int = MAX_DD_JSON * 2) -> Optional[bytes]:
    """The bytes of a base64 string (or the bytes themselves, as boto3 hands them), else None."""
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    if type(raw) is not str or not raw or len(raw) > limit:
        return None
    try:
        return _b64decode_strict(raw)
    except (binascii.Error, ValueError):
        logger.debug("base64 carrier malformed: ignored")
        return None


def b64_object(raw: Any) -> Optional[Dict[str, Any]]:
    """``loads_object(b64_bytes(raw))`` in one call: a base64 ``_datadog`` (SNS and SQS Binary
    attributes, an authorizer's) decoded and parsed. On every SNS event: one layer, not two."""
    if type(raw) is not str or not raw or len(raw) > MAX_DD_JSON * 2:
        return loads_object(b64_bytes(raw))  # bytes as boto3 hands them, or junk
    try:
        data = _a2b_base64(raw, strict_mode=True)  # what b64_bytes does
    except (binascii.Error, ValueError):
        logger.debug("base64 carrier malformed: ignored")
        return None
    size = len(data)
    if size < 2 or size > MAX_DD_JSON or data[0] != 0x7B or not data[1]:
        return loads_object(data)  # not what producers write: the general path decides
    # "{" then a non-NUL byte: json.loads would detect UTF-8 (not UTF-16/32) and decode so.
    try:
        text = data.decode("utf-8", "surrogatepass")
        value, end = _scan_once(text, 0)  # raises what json.loads raises (or StopIteration)
        if end != len(text) and text[end:].strip(_JSON_SPACE):
            raise ValueError("extra data after the JSON object")
    except (ValueError, TypeError, RecursionError, StopIteration):
        logger.debug("_datadog is not valid JSON: ignored")
        return None
    return value if type(value) is dict else None


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
