"""Reading one header value from any carrier, case-insensitively and defensively.

Carriers come from the internet (API Gateway), from other tracers and from user code: keys may be
in any case, values may be lists (``multiValueHeaders``, OTel getters), bytes, or garbage. A
reader returns a ``str`` or None, never raises, and refuses hostile sizes.
"""

from __future__ import annotations

import logging
from itertools import islice
from typing import Any, Callable, Optional

from opentelemetry.propagators.textmap import DefaultGetter, Getter, default_getter

logger = logging.getLogger("otel_dd_lambda.propagators")

MAX_HEADER_CHARS = 8192  # far above any valid trace header; protects the parsers
MAX_KEYS = 1024  # keys scanned for a case-insensitive match through a getter

HeaderReader = Callable[[str], Optional[str]]


def _first_str(value: Any) -> Optional[str]:
    """A header value as ``str``: the value, or the first of a list (multi-value headers)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):  # one level only: a header is not a tree
        if not value:
            return None
        value = value[0]
    if type(value) is str:
        return value if len(value) <= MAX_HEADER_CHARS else None
    if isinstance(value, (bytes, bytearray)):
        if len(value) > MAX_HEADER_CHARS:
            return None
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            logger.debug("header value is not ASCII: ignored")
            return None
    if isinstance(value, str):  # a str subclass: its plain value, without calling its methods
        value = str.__str__(value)
        return value if len(value) <= MAX_HEADER_CHARS else None
    return None


def _lowered(carrier: dict) -> dict:
    if type(carrier) is dict:
        try:
            return {k.lower(): v for k, v in carrier.items()}
        except Exception:  # a key that is not a str: filter below
            pass
    try:
        return {str.lower(k): v for k, v in carrier.items() if isinstance(k, str)}
    except Exception:  # a dict subclass with a hostile items()
        logger.debug("carrier could not be read as a mapping")
        return {}


def reader(carrier: Any, getter: Getter = None) -> HeaderReader:  # type: ignore[assignment]
    """A function ``name -> str | None`` over ``carrier``; ``name`` must be lowercase.

    A plain dict read with OTel's default getter is looked up directly, and lowered once when a
    name is not found as written (an exact lowercase key wins over other spellings). Any other
    getter is asked for the name as given, then for every key it lists that matches without case.
    """
    if getter is None or type(getter) is DefaultGetter:
        if type(carrier) is dict:
            return _dict_reader(carrier)
        if isinstance(carrier, dict):  # a subclass: read its items once, defensively
            get = _lowered(carrier).get
            return lambda name: _first_str(get(name))
    if getter is None:
        if not hasattr(carrier, "get"):  # an int, None, a list: nothing to read
            logger.debug("carrier of type %s holds no headers", type(carrier).__name__)
            return _no_header
        getter = default_getter  # any other mapping (MappingProxyType, HTTPMessage, ...)
    return lambda name: _read_with_getter(carrier, getter, name)


def _dict_reader(carrier: dict) -> HeaderReader:
    # An exact (lowercase) key is looked up directly; the carrier is lowered, once, only when a
    # name is missing: ddtrace, OTel and HTTP/2 all write lowercase names, so often it never is.
    exact = carrier.get
    lowered: Optional[dict] = None

    def read(name: str) -> Optional[str]:
        nonlocal lowered
        value = exact(name)
        if value is None:
            if lowered is None:
                lowered = _lowered(carrier)
            value = lowered.get(name)
        if type(value) is str and len(value) <= MAX_HEADER_CHARS:  # the common case, inline
            return value
        return _first_str(value)

    return read


def _no_header(name: str) -> None:
    return None


def _read_with_getter(carrier: Any, getter: Getter, name: str) -> Optional[str]:
    try:
        value = getter.get(carrier, name)
        if value is None:
            for key in islice(getter.keys(carrier), MAX_KEYS):
                if isinstance(key, str) and str.lower(key) == name:
                    value = getter.get(carrier, key)
                    break
        return _first_str(value)
    except Exception:  # a user getter or carrier that misbehaves is "no header"
        logger.debug("getter failed reading %s", name, exc_info=True)
        return None
