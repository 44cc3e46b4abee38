"""Turning a caller's timeout into a wait that ``threading`` and ``socket`` accept.

OTel's ``force_flush(timeout_millis)`` is called with whatever the caller computed: ``inf``,
``10**30``, NaN or a negative number must neither raise (``Lock.acquire`` rejects a timeout over
``threading.TIMEOUT_MAX`` with OverflowError) nor lose the spans being flushed.
"""

from __future__ import annotations

import math
from typing import Any

# The longest wait any flush is given: far beyond what an export needs, far below TIMEOUT_MAX.
MAX_WAIT_SECONDS = 24 * 3600.0


def timeout_seconds(timeout_millis: Any) -> float:
    """``timeout_millis`` in seconds within ``[0, MAX_WAIT_SECONDS]``; NaN and junk give 0."""
    try:
        seconds = float(timeout_millis) / 1000.0
    except OverflowError:  # an int too large for a float: as long as allowed
        return MAX_WAIT_SECONDS
    except (TypeError, ValueError):
        return 0.0
    if math.isnan(seconds) or seconds <= 0:
        return 0.0
    return min(seconds, MAX_WAIT_SECONDS)


def timeout_millis(seconds: float) -> int:
    """Seconds (already bounded) back to whole milliseconds for an SDK ``force_flush``."""
    return int(max(0.0, min(seconds, MAX_WAIT_SECONDS)) * 1000)
