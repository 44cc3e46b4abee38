"""Span events in a Datadog span: the ``events`` JSON tag (``events_json``) or the agent's native
``span_events`` (``native_event``).

Kept apart from ``mapping`` because most spans carry no events: a function's cold start does not
load this code (``SpanMapper`` imports it for the first span with events)."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence

from otel_dd_lambda.exporters.mapping import _INT_MIN, _SAFE_VALUE_CHARS, LimitLog, _plain_dict, _to_str
from otel_dd_lambda.limits import ELLIPSIS, MAX_META_KEY, MAX_META_VALUE, truncate_utf8, utf8_len


def _json_value(value: Any, cap: Optional[int] = None) -> Any:
    if type(value) is str:
        return value if cap is None else truncate_utf8(value, cap, ELLIPSIS)
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v, cap) for v in value]
    text = _to_str(value)
    return text if cap is None else truncate_utf8(text, cap, ELLIPSIS)


def _dump_events(out: List[Dict[str, Any]]) -> str:
    try:
        return json.dumps(out, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN/inf attribute values
        return json.dumps(out, separators=(",", ":"), ensure_ascii=False, default=str).replace(
            "NaN", '"NaN"').replace("Infinity", '"Infinity"')


def _event_items(events: Sequence[Any], cap: Optional[int]) -> List[Dict[str, Any]]:
    out = []
    for event in events:
        name = event.name if cap is None else truncate_utf8(_to_str(event.name), cap, ELLIPSIS)
        item: Dict[str, Any] = {"time_unix_nano": event.timestamp, "name": name}
        attributes = _plain_dict(event.attributes)
        if attributes:
            if cap is None:
                item["attributes"] = {k: _json_value(v) for k, v in attributes.items()}
            else:
                item["attributes"] = {truncate_utf8(k, min(cap, MAX_META_KEY), ELLIPSIS): _json_value(v, cap)
                                      for k, v in attributes.items()}
        out.append(item)
    return out


def events_json(events: Sequence[Any], limits: Optional[LimitLog] = None) -> str:
    """The ``events`` meta tag: the JSON list Datadog's OTLP ingest writes.

    It must stay valid JSON within one tag's limit, so an oversized list is shortened here (the
    bounding pass would cut the text): string attributes shortened evenly, then harder, then
    only the names and times of the first events.
    """
    text = _dump_events(_event_items(events, None))
    if len(text) <= _SAFE_VALUE_CHARS or utf8_len(text) <= MAX_META_VALUE:
        return text
    if limits is not None:
        limits.note("events")
    strings = sum(len(_plain_dict(e.attributes)) + 1 for e in events)
    for cap in (MAX_META_VALUE // max(1, strings) - 64, 2048, 256, 32):
        if cap < 16:
            continue
        text = _dump_events(_event_items(events, cap))
        if utf8_len(text) <= MAX_META_VALUE:
            return text
    items: List[Dict[str, Any]] = [
        {"time_unix_nano": e.timestamp, "name": truncate_utf8(_to_str(e.name), 64, ELLIPSIS)} for e in events]
    while items:
        text = _dump_events(items)
        if utf8_len(text) <= MAX_META_VALUE:
            return text
        items = items[: len(items) // 2]
    return "[]"


def _typed_value(value: Any) -> Dict[str, Any]:
    """One native span-event attribute value (the agent's AttributeAnyValue map)."""
    kind = type(value)
    if kind is str:
        if len(value) > _SAFE_VALUE_CHARS:  # one value, as a tag's limit
            value = truncate_utf8(value, MAX_META_VALUE, ELLIPSIS)
        return {"type": 0, "string_value": value}
    if kind is bool:
        return {"type": 1, "bool_value": value}
    if kind is int and _INT_MIN <= value < (1 << 63):
        return {"type": 2, "int_value": value}
    if kind is float or kind is int:
        return {"type": 3, "double_value": float(value)}
    if isinstance(value, (list, tuple)):
        return {"type": 4, "array_value": {"values": [_typed_value(v) for v in value]}}
    return {"type": 0, "string_value": _to_str(value)}


def native_event(event: Any) -> Dict[str, Any]:
    item: Dict[str, Any] = {"time_unix_nano": event.timestamp, "name": event.name}
    attributes = _plain_dict(event.attributes)
    if attributes:
        item["attributes"] = {k: _typed_value(v) for k, v in attributes.items()}
    return item
