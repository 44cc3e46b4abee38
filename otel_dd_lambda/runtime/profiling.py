"""Continuous profiling (``DD_PROFILING_ENABLED``) through ddtrace's profiler, when installed.

The profiler is ddtrace's, not part of this package: with ddtrace importable it is started once
at init (``DD_PROFILING_IGNORE_PROFILER`` is read by ddtrace itself); without it, one warning.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

logger = logging.getLogger(__name__)

_profiler: Optional[Any] = None
_warned = False


def start_profiler() -> Optional[Any]:
    """Start ddtrace's profiler (idempotent); the profiler, or None when it cannot run."""
    global _profiler, _warned
    if _profiler is not None:
        return _profiler
    try:
        from ddtrace.profiling import Profiler
    except ImportError:
        if not _warned:
            _warned = True
            logger.warning(
                "DD_PROFILING_ENABLED is set but ddtrace is not installed: profiling is off "
                "(add ddtrace to the function's dependencies to profile it)")
        return None
    try:
        profiler = Profiler()
        profiler.start()
    except Exception as error:  # a profiler that cannot start must not stop the function
        logger.warning("could not start ddtrace's profiler: %s", error)
        return None
    _profiler = profiler
    return profiler


def stop_profiler(flush: bool = False) -> None:
    """Stop the profiler started here, if any."""
    global _profiler
    profiler, _profiler = _profiler, None
    if profiler is not None:
        try:
            profiler.stop(flush=flush)
        except Exception:
            logger.debug("profiler stop failed", exc_info=True)
