"""Reading one header value from any carrier, case-insensitively and defensively.

Carriers come from the internet (API Gateway), from other tracers and from user code: keys may be
in any case, values may be lists (``multiValueHeaders``, OTel getters), bytes, or garbage. A
reader returns a ``str`` or None, never raises, and refuses hostile sizes.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from opentelemetry.propagators.textmap import DefaultGetter, Getter

logger = logging.getLogger("otel_dd_lambda.propagators")

MAX_HEADER_CHARS = 8192  # far above any valid trace header; protects the parsers

HeaderReader = Callable[[str], Optional[str]]


def _first_str(value: Any) -> Optional[str]:
    if type(value) is str:
        return value if len(value) <= MAX_HEADER_CHARS else None
    if isinstance(value, (list, tuple)):
        return _first_str(value[0]) if value else None
    if isinstance(value, (bytes, bytearray)) and len(value) <= MAX_HEADER_CHARS:
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str):  # a str subclass
        return _first_str(str(value))
    return None


def reader(carrier: Any, getter: Getter = None) -> HeaderReader:  # type: ignore[assignment]
    """A function ``name -> str | None`` over ``carrier``; ``name`` must be lowercase.

    A plain mapping read with OTel's default getter is lowered once, so each lookup is one dict
    access. Any other getter is asked for the name as given, then for every key it lists that
    matches without case.
    """
    if isinstance(carrier, dict) and (getter is None or type(getter) is DefaultGetter):
        try:
            lowered = {k.lower(): v for k, v in carrier.items() if type(k) is str}
        except Exception:  # a dict subclass with a hostile items()
            logger.debug("carrier could not be read as a mapping")
            lowered = {}
        get = lowered.get
        return lambda name: _first_str(get(name))
    if getter is None:
        return lambda name: None
    return lambda name: _read_with_getter(carrier, getter, name)


def _read_with_getter(carrier: Any, getter: Getter, name: str) -> Optional[str]:
    try:
        value = getter.get(carrier, name)
        if value is None:
            for key in getter.keys(carrier):
                if type(key) is str and key.lower() == name:
                    value = getter.get(carrier, key)
                    break
        return _first_str(value)
    except Exception:  # a user getter or carrier that misbehaves is "no header"
        logger.debug("getter failed reading %s", name, exc_info=True)
        return None
