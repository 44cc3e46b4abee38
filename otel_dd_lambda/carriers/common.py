"""Decoding helpers shared by the carriers: bounded, defensive, no exceptions.

``_datadog`` payloads are small JSON objects; anything much larger is not ours, so it is not
parsed (an attacker could otherwise make every invocation parse megabytes). Every decode has a
size limit checked before it runs; JSON nesting is bounded by the interpreter's recursion limit
(the C scanner raises RecursionError after ~1,000 levels, in microseconds), caught here; a
decompression stops at a fixed output size. Input over a limit is "no context" and a debug log.
"""

from __future__ import annotations

import binascii
import functools
import json
import logging
import re
import sys
import zlib
from base64 import b64decode
from typing import Any, Callable, Dict, Optional, Tuple

logger = logging.getLogger("otel_dd_lambda.carriers")

MAX_DD_JSON = 8192  # a _datadog object is a few hundred bytes; larger is not a trace carrier
MAX_EVENT = 6 * 1024 * 1024  # Lambda's payload limit (synchronous): no string in an event is longer
DATADOG_KEY = "_datadog"

_loads = json.loads
# json.loads's own scanner (the C one when available). json.loads adds three Python layers
# (type checks, encoding detection, leading-whitespace regex) that cost as much as scanning a
# _datadog object; for text that starts with "{" (what every producer writes) they do nothing.
# (The decoder's own scanner, an instance attribute that the stubs do not declare.)
_scan_once: Callable[[str, int], Tuple[Any, int]] = vars(json.JSONDecoder())["scan_once"]
_JSON_SPACE = " \t\n\r"


def loads_object(raw: Any, limit: int = MAX_DD_JSON) -> Optional[Dict[str, Any]]:
    """``raw`` (str/bytes JSON, or an already-decoded dict) as a dict, else None."""
    if type(raw) is dict:
        return raw
    if not isinstance(raw, (str, bytes, bytearray)) or not raw or len(raw) > limit:
        if isinstance(raw, (str, bytes, bytearray)) and len(raw) > limit:
            logger.debug("a %d-character JSON carrier is over the %d limit: ignored", len(raw), limit)
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
        if type(raw) is str and len(raw) > limit:
            logger.debug("a %d-character base64 carrier is over the %d limit: ignored", len(raw), limit)
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


_B64_STEP = 16384  # base64 characters decoded per step (a multiple of 4: each step stands alone)


def gunzip_b64_prefix(raw: Any, max_output: int) -> Optional[bytes]:
    """The first ``max_output`` bytes (at most) of ``gunzip(base64(raw))``, else None.

    Decodes and inflates step by step and stops as soon as ``max_output`` bytes are out, so
    neither a gzip bomb nor a 6 MB string costs more than about ``max_output`` plus one step.
    """
    if type(raw) is not str or not raw or len(raw) > MAX_EVENT:
        logger.debug("gzip carrier missing or over %d characters: ignored", MAX_EVENT)
        return None
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing
    parts = []
    size = 0
    try:
        for start in range(0, len(raw), _B64_STEP):
            part = inflater.decompress(_b64decode_strict(raw[start:start + _B64_STEP]), max_output - size)
            parts.append(part)
            size += len(part)
            if size >= max_output or inflater.eof:
                break
    except (binascii.Error, ValueError, zlib.error):
        logger.debug("gzip carrier malformed: ignored")
        return None
    return b"".join(parts)


_SPACE = re.compile(r"[ \t\n\r]*")
_scan_string: Any = json.decoder.scanstring  # type: ignore[attr-defined]  # (C scanner; not in the stubs)


def json_member(text: str, key: str, max_members: int = 16) -> Any:
    """The value of ``key`` among the first ``max_members`` members of the JSON object ``text``,
    else None. Members are scanned in order and scanning stops at ``key``: what follows is never
    parsed, so ``text`` may be a prefix cut anywhere after that member."""
    try:
        end = _SPACE.match(text).end()  # type: ignore[union-attr]
        if text[end] != "{":
            return None
        end += 1
        for _ in range(max_members):
            end = _SPACE.match(text, end).end()  # type: ignore[union-attr]
            if text[end] != '"':
                return None
            name, end = _scan_string(text, end + 1)
            end = _SPACE.match(text, end).end()  # type: ignore[union-attr]
            if text[end] != ":":
                return None
            end = _SPACE.match(text, end + 1).end()  # type: ignore[union-attr]
            value, end = _scan_once(text, end)
            if name == key:
                return value
            end = _SPACE.match(text, end).end()  # type: ignore[union-attr]
            if text[end] != ",":
                return None
            end += 1
    except (ValueError, IndexError, StopIteration, RecursionError):
        pass  # malformed, or cut off before the member
    logger.debug("JSON member %r not found in the first %d members: ignored", key, max_members)
    return None


def dict_at(obj: Any, key: str) -> Optional[Dict[str, Any]]:
    """``obj[key]`` when ``obj`` is a dict and that value is a dict."""
    if type(obj) is not dict:
        return None
    value = obj.get(key)
    return value if type(value) is dict else None


def datadog_member(event: Any) -> Optional[Dict[str, Any]]:
    """``_datadog`` at the top of a JSON object event (an AWS IoT rule's, or any producer's)."""
    return loads_object(event.get(DATADOG_KEY)) if type(event) is dict else None


def first_record(event: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    records = event.get("Records")
    if type(records) is list and records and type(records[0]) is dict:
        return records[0]
    return None


def attribute_key_carrier(key: Tuple[bool, str]) -> Optional[Dict[str, Any]]:
    """The carrier of a ``_datadog`` message attribute named by its key ``(is String, text)``
    (``sqs.attribute_key``, ``sns.attribute_key``): JSON text, or base64 of it when Binary."""
    is_string, value = key
    return loads_object(value) if is_string else b64_object(value)
