"""Payload capture (``DD_CAPTURE_LAMBDA_PAYLOAD``): request and response as flattened span tags.

The shape is datadog_lambda's, so dashboards and facets keep working: ``function.request.<path>``
with list indexes and mapping keys joined by dots; every value a string (``None``, ``True``,
``1.5`` as Python writes them); strings and bytes that hold JSON are parsed and flattened too;
at the depth limit (``DD_CAPTURE_LAMBDA_PAYLOAD_MAX_DEPTH``, default 10) the rest of the value is
written as one string. Values are cut at 5,000 characters.

Where we differ on purpose: a sensitive key (``authorization``, ``x-authorization``, ``password``,
``token``) is redacted whole, whatever its value became (datadog_lambda misses ``"token": "123"``,
which parses as a number, and flattens lists and objects under such keys in clear); a payload
yields at most ``MAX_TAGS`` tags; only strings up to ``MAX_JSON_TEXT`` are tried as JSON; and
odd values (cycles, objects whose ``items()`` or ``str()`` raise) never raise.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Dict

REDACTED_KEYS = frozenset(("authorization", "x-authorization", "password", "token"))
REDACTED = "redacted"
MAX_VALUE_CHARS = 5000
MAX_TAGS = 1000  # per payload: a 6 MB event must not become a million span attributes
MAX_JSON_TEXT = 256 * 1024  # longer text is written as a (cut) string, not parsed
DEFAULT_MAX_DEPTH = 10


class _TagBudgetSpent(Exception):
    pass


def payload_tags(prefix: str, payload: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> Dict[str, str]:
    """``payload`` flattened under ``prefix`` (``function.request``, ``function.response``)."""
    tags: Dict[str, str] = {}
    try:
        _flatten(tags, prefix, payload, 0, max_depth)
    except _TagBudgetSpent:
        pass
    return tags


def _put(tags: Dict[str, str], key: str, value: str) -> None:
    if key not in tags and len(tags) >= MAX_TAGS:
        raise _TagBudgetSpent
    tags[key] = value[:MAX_VALUE_CHARS]


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a user object whose __str__ fails
        return "UNKNOWN"


def _flatten(tags: Dict[str, str], key: str, value: Any, depth: int, max_depth: int) -> None:
    if (key.rpartition(".")[2] or key).lower() in REDACTED_KEYS:
        _put(tags, key, REDACTED)  # the whole value, whatever its shape
        return
    if value is None:
        _put(tags, key, "None")
        return
    if depth >= max_depth:
        _put(tags, key, _text(value))
        return
    depth += 1
    if isinstance(value, (str, bytes, bytearray)):
        parsed = _json(value)
        if parsed is not _NOT_JSON:
            _flatten(tags, key, parsed, depth, max_depth)
        elif isinstance(value, str):
            _put(tags, key, value[:MAX_VALUE_CHARS])
        else:
            _put(tags, key, repr(bytes(value[:MAX_VALUE_CHARS])))
        return
    if isinstance(value, (bool, int, float, Decimal)):
        _put(tags, key, _text(value))
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(tags, "%s.%d" % (key, index), item, depth, max_depth)
        return
    items = _items(value)
    if items is not None:
        for name, item in items:
            _flatten(tags, "%s.%s" % (key, _text(name)), item, depth, max_depth)
        return
    _put(tags, key, _text(value))


def _items(value: Any) -> Any:
    """A mapping's items, or a ``to_dict()``'s; None for anything else (or when they fail)."""
    try:
        if hasattr(value, "items"):
            return list(value.items())
        if hasattr(value, "to_dict"):
            return list(value.to_dict().items())
    except Exception:  # the user's object misbehaves: it is written as a string instead
        return None
    return None


_NOT_JSON = object()


def _json(text: Any) -> Any:
    if len(text) > MAX_JSON_TEXT:
        return _NOT_JSON
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON
