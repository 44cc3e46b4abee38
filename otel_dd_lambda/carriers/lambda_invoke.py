"""Lambda Invoke: the caller's headers in ``context.client_context.custom`` (synchronous
invocations), either the header keys themselves or, from older tracers, under ``_datadog``."""

from __future__ import annotations

from typing import Any, Dict, Optional

from .common import DATADOG_KEY, loads_object


def client_context_carrier(lambda_context: Any) -> Optional[Dict[str, Any]]:
    try:
        client_context = getattr(lambda_context, "client_context", None)
        custom = getattr(client_context, "custom", None) if client_context is not None else None
    except Exception:  # a foreign context object with raising properties
        return None
    if type(custom) is not dict or not custom:
        return None
    legacy = custom.get(DATADOG_KEY)
    if legacy is not None:
        return loads_object(legacy)
    return custom
