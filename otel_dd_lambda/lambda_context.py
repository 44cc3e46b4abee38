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
    """``get_remaining_time_in_millis()`` as an int within Lambda's bounds; None when the context
    has no usable answer (missing, raising, not a number)."""
    try:
        method = getattr(lambda_context, "get_remaining_time_in_millis", None)
        if method is None:
            return None
        value = method()
        if type(value) is not int:
            value = int(value)  # a float, a numeric string; NaN, inf and junk raise
            if type(value) is not int:  # an __int__ returning an int subclass
                value = int.__index__(value)
    except Exception as exc:  # the context object is the caller's: its failure is not our bug
        logger.debug("the Lambda context has no usable remaining time: %r", exc)
        return None
    return min(value, MAX_REMAINING_MS)
