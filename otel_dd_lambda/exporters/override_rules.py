"""How ``datadog.*`` override attributes change a mapped span (the rules listed in ``overrides``,
whose keys they read): values converted as the agent's pdata ``AsString``, tag values normalized as
its ``NormalizeTagValue``. Loaded with the first span that has overrides."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .overrides import ERROR, FIELDS, META, PREFIX, SPAN_KIND, STATUS_CODE

_ERROR_TAGS = ("error.msg", "error.type", "error.stack")
_EXCEPTION_KEYS = {"error.msg": "exception.message", "error.type": "exception.type",
                   "error.stack": "exception.stacktrace"}

# ---------------------------------------------------------------- value conversions


def go_string(value: Any) -> str:
    """An attribute value as the agent's ``AsString`` writes it (pdata ``Value.AsString``)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return _go_float(value)
    if isinstance(value, (list, tuple)):
        return _go_json_list(value)
    return str(value)


def _go_float(value: float) -> str:
    """ES6-style number text: shortest digits, exponent only below 1e-6 or from 1e21."""
    if math.isnan(value):
        return "json: unsupported value: NaN"
    if math.isinf(value):
        return "json: unsupported value: " + ("+Inf" if value > 0 else "-Inf")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(value)  # shortest digits, exponent of at least two digits ("1e-07")
        if "e-0" in text:
            text = text.replace("e-0", "e-")
        return text
    # imported here, the one use: decimal costs ~1.2 ms and 0.35 MB of every cold start otherwise
    from decimal import Decimal

    return format(Decimal(repr(value)).normalize(), "f")


def _go_json_list(values: Sequence[Any]) -> str:
    """A sequence as Go's encoding/json writes it (HTML characters escaped; "" when a float is
    not finite, where Go's encoder fails)."""
    items: List[str] = []
    for item in values:
        if type(item) is float:
            if not math.isfinite(item):
                return ""
            items.append(_go_float(item))
        elif item is None:
            items.append("null")
        else:
            items.append(json.dumps(item, ensure_ascii=False))
    text = "[" + ",".join(items) + "]"
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        if raw in text:
            text = text.replace(raw, escaped)
    return text


def _wrap(value: Any, bits: int, signed: bool) -> int:
    """An attribute read as Go's ``Value.Int()`` (0 unless an int) converted to an int of ``bits``."""
    if type(value) is not int:
        return 0
    value &= (1 << bits) - 1
    if signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


_MAX_TAG_CHARS = 200
_MAX_TAG_BYTES = 2 * _MAX_TAG_CHARS
_VALID_ASCII = frozenset("abcdefghijklmnopqrstuvwxyz0123456789:./-")


def normalize_tag_value(text: str) -> str:
    """Datadog's tag-value normalization: lower case; letters, digits, ``:./-`` kept; every run
    of other characters (``_`` included) becomes one ``_``, a trailing run is dropped; at most
    200 characters (and no character starting past byte 400 of the UTF-8 text)."""
    if not text:
        return ""
    if len(text) <= _MAX_TAG_CHARS and _is_normalized_ascii(text):
        return text
    import unicodedata  # off the fast path: not loaded at every cold start

    out: List[str] = []
    in_cut = False  # the last character was in a run that became "_"
    chars = 0
    offset = 0  # UTF-8 byte offset of the next character
    for ch in text:
        offset += _utf8_width(ch)
        chars += 1
        ch = _lower(ch)
        if ch.isalpha() or ch == ":" or ch in ".-/" or unicodedata.category(ch) == "Nd":
            out.append(ch)
            in_cut = False
        elif not in_cut:
            out.append("_")
            in_cut = True
        if offset >= _MAX_TAG_BYTES or chars >= _MAX_TAG_CHARS:
            break
    if in_cut:
        out.pop()  # a run reaching the end is dropped, not replaced
    return "".join(out)


def _is_normalized_ascii(text: str) -> bool:
    """The agent's fast path: valid ASCII characters, each ``_`` followed by a valid one."""
    previous_underscore = False
    for ch in text:
        if ch in _VALID_ASCII:
            previous_underscore = False
        elif ch == "_" and not previous_underscore:
            previous_underscore = True
        else:
            return False
    return not previous_underscore


def _lower(ch: str) -> str:
    """Lower an upper-case letter when its lower case is one character of the same UTF-8 width."""
    if "A" <= ch <= "Z":
        return chr(ord(ch) + 32)
    if ch.isascii():
        return ch
    import unicodedata  # loaded already by normalize_tag_value, its caller

    if unicodedata.category(ch) != "Lu":
        return ch
    low = ch.lower()
    return low if len(low) == 1 and _utf8_width(low) == _utf8_width(ch) else ch


def _utf8_width(ch: str) -> int:
    code = ord(ch)
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


# ---------------------------------------------------------------- applying them


def _field(attributes: Mapping[str, Any], resource: Mapping[str, Any], key: str) -> str:
    """The normalized value of ``key``: the span's unless empty, else the resource's."""
    for source in (attributes, resource):
        if key in source:
            value = normalize_tag_value(go_string(source[key]))
            if value:
                return value
    return ""


def apply(dd_span: Dict[str, Any], attributes: Mapping[str, Any],
                    resource: Optional[Mapping[str, Any]], status_is_error: bool, events: Sequence[Any]) -> None:
    """Apply the override attributes of a span and its resource to the mapped ``dd_span``."""
    resource = resource or {}
    meta: Dict[str, str] = dd_span["meta"]
    metrics: Dict[str, Any] = dd_span["metrics"]
    for key in attributes:
        if key.startswith(PREFIX):  # never tags: the agent skips the whole namespace
            meta.pop(key, None)
            metrics.pop(key, None)
    for key, field in FIELDS:
        value = _field(attributes, resource, key)
        if value:
            dd_span[field] = value
    kind = _field(attributes, resource, SPAN_KIND)
    if kind:
        meta["span.kind"] = kind
    overridden = set()
    for key, tag in META:
        for source in (attributes, resource):  # the resource's copy comes second and wins
            if key in source:
                text = go_string(source[key])
                if text:
                    meta[tag] = text
                    overridden.add(tag)
    source = attributes if STATUS_CODE in attributes else resource
    code = _wrap(source.get(STATUS_CODE), 32, signed=False)
    if code:
        metrics["http.status_code"] = float(code)
    _apply_error(dd_span, attributes, overridden, status_is_error, events)


def _apply_error(dd_span: Dict[str, Any], attributes: Mapping[str, Any], overridden: set,
                 status_is_error: bool, events: Sequence[Any]) -> None:
    """The error flag and error tags (the agent's ``datadog.error`` / ``Status2Error`` order)."""
    # what the agent's meta holds when it decides: overrides, then non-numeric span attributes
    all_tags = all(tag in overridden or (tag in attributes and type(attributes[tag]) not in (int, float))
                   for tag in _ERROR_TAGS)
    if all_tags:
        if ERROR in attributes:
            dd_span["error"] = _wrap(attributes[ERROR], 32, signed=True)
        return  # the status-derived flag stays otherwise
    # the flag follows the status (the mapping already set it); exception events win over
    # the overrides on an ERROR status
    if not status_is_error or not overridden.intersection(_ERROR_TAGS):
        return
    meta = dd_span["meta"]
    for event in events:
        if str(getattr(event, "name", "")).lower() != "exception":
            continue
        event_attributes = getattr(event, "attributes", None) or {}
        for tag in _ERROR_TAGS:
            source_key = _EXCEPTION_KEYS[tag]
            if tag in overridden and source_key in event_attributes:
                meta[tag] = go_string(event_attributes[source_key])
