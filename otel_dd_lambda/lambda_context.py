"""Reading the Lambda context object, which may be any object a caller passes.

The runtime's context has plain attributes and ``get_remaining_time_in_millis()``; tests, local
runners and other frameworks pass their own objects, some of whose properties raise. Every read
of the context goes through here, so a foreign object costs a tag or the deadline, never a span.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

logger = logging.getLogger(__name__)

MAX_REMAINING_MS = 900_000  # Lambda's longest timeout: 15 minutes


def context_str(lambda_context: Any, name: str) -> Optional[str]:
    """A non-empty string attribute of the context, else None (also when reading it raises)."""
    try:
        value = getattr(lambda_context, name, None)
    except Exception:
        return None
    return value if type(value) is str and value else None


def remaining_ms(lambda_context: Any) -> Optional[int]:
    """``get_remaining_time_in_millis()`` as an int, at most Lambda's longest timeout (it may be
    zero or negative: no time left); None when the context has no usable answer (no such method,
    it raises, or it returns anything but a finite int or float)."""
    try:
        method = getattr(lambda_context, "get_remaining_time_in_millis", None)
        value = method() if callable(method) else None
    except Exception as exc:  # the context object is the caller's: its failure is not our bug
        logger.debug("the Lambda context has no usable remaining time: %r", exc)
        return None
    if type(value) is float and value - value == 0.0:  # finite (NaN and inf give NaN)
        value = int(value)
    if type(value) is not int:  # bool, str, None, NaN, inf, any other object
        logger.debug("the Lambda context's remaining time is not a number: %s", type(value).__name__)
        return None
    return min(value, MAX_REMAINING_MS)
