"""W3C ``baggage``: read into OTel baggage (``opentelemetry.baggage``), written from it, by ddtrace's rules.

Limits: at most ``max_items`` items and ``max_bytes`` bytes (``config.baggage_limits``: 64 and
8,192, ddtrace's); past either, the items that fit are kept, in order. An item without ``=``, or
with an empty key or value once decoded, makes the whole header malformed: no baggage (ddtrace's
rule, so both tracers read a hostile header alike). Decoding is ``urllib.parse.unquote``'s, as in
ddtrace: a bad escape stays as written, invalid UTF-8 becomes U+FFFD.

Writing percent-encodes what W3C's ``baggage-octet`` excludes, and ``%`` itself (W3C requires it;
ddtrace leaves ``%`` as is, so a value such as ``%41`` would come back as ``A``).
"""

from __future__ import annotations

import logging
import sys
from itertools import islice
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import quote, unquote

from opentelemetry.context import Context

from .. import config

logger = logging.getLogger("otel_dd_lambda.propagators")

HEADER = "baggage"
TAG_PREFIX = "baggage."
# Left unencoded: a key's RFC 7230 token characters, a value's baggage-octets (neither has "%").
_KEY_SAFE = "!#$&'*+-.^_`|~"
_VALUE_SAFE = "!#$&'()*+-./:<>?@[]^_`{|}~"


def parse(header: str, max_items: int, max_bytes: int) -> Dict[str, str]:
    """The items of a ``baggage`` header value ({} when malformed)."""
    # Only items starting within max_bytes + 1 characters can fit (a character is at least a
    # byte): cut after the one that crosses, so a long header costs one scan, not a split.
    cut = header.find(",", max_bytes + 1)
    if cut >= 0:
        header = header[:cut]
    items: Dict[str, str] = {}
    total = 0
    for index, item in enumerate(header.split(",", max_items)):
        if index >= max_items:
            logger.debug("baggage has more than %d items: the rest dropped", max_items)
            break
        if "=" not in item:
            logger.debug("baggage item without '=': header ignored")
            return {}
        size = (len(item) if item.isascii() else len(item.encode("utf-8", "surrogatepass"))) + (1 if items else 0)
        if total + size > max_bytes:
            logger.debug("baggage over %d bytes: the rest dropped", max_bytes)
            break
        key, _, value = item.partition("=")
        key, value = unquote(key.strip()), unquote(value.strip())
        if not key or not value:
            logger.debug("baggage item with an empty key or value: header ignored")
            return {}
        items[key] = value
        total += size
    return items


def format_items(items: Iterable[Tuple[Any, Any]], max_items: int, max_bytes: int) -> str:
    """A ``baggage`` header value for ``items`` (the first ones that fit both limits)."""
    parts: List[str] = []
    total = 0
    for key, value in islice(items, max_items):
        part = "%s=%s" % (quote(str(key).strip(), safe=_KEY_SAFE), quote(str(value).strip(), safe=_VALUE_SAFE))
        size = len(part) + (1 if parts else 0)  # quote() returns ASCII
        if total + size > max_bytes:
            logger.debug("baggage over %d bytes: the rest not sent", max_bytes)
            break
        parts.append(part)
        total += size
    return ",".join(parts)


def header_value(carrier: Any) -> Optional[str]:
    """The ``baggage`` header of a dict carrier; None when absent or not text.

    Spelled ``baggage`` (HTTP/2, API Gateway v2, every tracer's ``_datadog``), ``Baggage`` (what
    an HTTP/1.1 client may send to API Gateway REST, which keeps its casing) or ``BAGGAGE``: three
    dict lookups, where a scan for any other casing would cost about a microsecond on every event
    with headers (5-10% of an extraction) to find spellings no producer writes.
    No size cap here: ``parse`` looks at about ``max_bytes`` of it whatever its length.
    """
    get = carrier.get
    value = get(HEADER)
    if value is None:
        value = get(_TITLE)
        if value is None:
            value = get(_UPPER)
            if value is None:
                return None
    return _text(value)


_TITLE, _UPPER = HEADER.title(), HEADER.upper()
# The spellings ``header_value`` reads: a carrier with none of them holds no baggage (one C call).
SPELLINGS = frozenset((HEADER, _TITLE, _UPPER))


def _text(value: Any) -> Optional[str]:
    if isinstance(value, (list, tuple)):  # multi-value headers: the first
        value = value[0] if value else None
    if type(value) is str:
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        return str.__str__(value)
    return None


def current_items(context: Optional[Context]) -> Mapping[str, object]:
    """The OTel baggage of ``context`` (None: the current context).

    ``opentelemetry.baggage`` makes the context key baggage lives under when it is imported, so
    until something imports it no context can hold baggage: it is not imported just to find
    none (it compiles regexes at import: ~6M instructions, 0.2 MB, of every cold start).
    """
    otel_baggage = sys.modules.get("opentelemetry.baggage")
    if otel_baggage is None:
        return {}
    return otel_baggage.get_all(context)


def with_items(context: Optional[Context], items: Mapping[str, str]) -> Context:
    """``context`` (None: a new one) with ``items`` as its OTel baggage (replacing any)."""
    from opentelemetry import baggage as otel_baggage  # loaded by the first baggage received

    context = otel_baggage.clear(context if context is not None else Context())
    for key, value in items.items():
        context = otel_baggage.set_baggage(key, value, context)
    return context


def span_tags(items: Mapping[str, Any], tag_keys: Tuple[str, ...]) -> Dict[str, str]:
    """``baggage.<key>`` tags for the keys of ``tag_keys`` in ``items`` (``("*",)``: all of them)."""
    if not items or not tag_keys:
        return {}
    keys = items.keys() if tag_keys == (config.ALL_BAGGAGE_KEYS,) else tag_keys
    return {TAG_PREFIX + key: str(items[key]) for key in keys if key in items}
