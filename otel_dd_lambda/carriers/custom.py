"""A user's own extractor, named by ``DD_TRACE_EXTRACTOR`` as ``<module file>.<function>``.

The function gets ``(event, lambda_context)`` and may return a ``(trace_id, parent_id,
sampling_priority)`` tuple, a ``{"traceID", "parentID", "sampleMode"}`` dict (Datadog's Node
convention), or a header mapping; each becomes a header mapping for the composite propagator.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Dict, Optional

from .common import logger

_cache: Dict[str, Optional[Callable[..., Any]]] = {}


def load(name: str) -> Optional[Callable[..., Any]]:
    """Import the function once per name; a bad name is logged once and ignored."""
    if name in _cache:
        return _cache[name]
    function = None
    module_name, _, attr = name.rpartition(".")
    try:
        if module_name:
            module_name = module_name.replace("/", ".")
            if "" not in sys.path and "." not in sys.path:
                sys.path.append(".")  # Lambda's task root is the working directory
            function = getattr(importlib.import_module(module_name), attr)
            if not callable(function):
                function = None
    except Exception as exc:  # the user's module or name is wrong
        logger.debug("DD_TRACE_EXTRACTOR %r could not be loaded: %r", name, exc)
        function = None
    _cache[name] = function
    return function


def _id(value: Any) -> Optional[str]:
    if type(value) is bool:
        return None
    if type(value) is int:
        return str(value)
    if type(value) is str and value.strip().isdigit():
        return value.strip()
    return None


def carrier(name: str, event: Any, lambda_context: Any) -> Optional[Dict[str, Any]]:
    function = load(name)
    if function is None:
        return None
    try:
        result = function(event, lambda_context)
    except Exception as exc:  # the user's extractor failed: reported, not treated as our bug
        logger.debug("DD_TRACE_EXTRACTOR %r raised %r", name, exc)
        return None
    if isinstance(result, tuple) and len(result) == 3:
        trace_id, parent_id, priority = result
    elif isinstance(result, dict) and "traceID" in result:
        trace_id, parent_id, priority = result.get("traceID"), result.get("parentID"), result.get("sampleMode")
    elif isinstance(result, dict):
        return result
    else:
        logger.debug("DD_TRACE_EXTRACTOR %r returned %s: ignored", name, type(result).__name__)
        return None
    headers = {"x-datadog-trace-id": _id(trace_id), "x-datadog-parent-id": _id(parent_id)}
    sampling = _id(priority) if type(priority) is not str else priority.strip()
    if type(priority) is int and type(priority) is not bool:
        sampling = str(priority)
    if sampling:
        headers["x-datadog-sampling-priority"] = sampling
    return {k: v for k, v in headers.items() if v is not None}
