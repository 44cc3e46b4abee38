"""Init errors: a span for a user handler that failed to load, flushed before the error goes on.

A function whose handler module raises on import never runs an invocation, so without this span
the failure would leave no trace at all. Datadog's Lambda library records it as an ``aws.lambda``
span of service ``aws.lambda`` and type ``serverless`` whose resource is the handler's module,
with ``error.type`` the bare class name, ``error.message`` the message, ``error.stack``,
``error.status`` 500, ``status`` "error", ``resource_names`` and ``operation_name``: the same
names here. The span is flushed synchronously, within ``FLUSH_TIMEOUT_MS``, before the caller
re-raises: Lambda reports the init error and stops the sandbox right after.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Optional, Tuple

logger = logging.getLogger(__name__)

FLUSH_TIMEOUT_MS = 2000  # of Lambda's 10 s init phase; a local agent answers in milliseconds
_MAX_STACK = 32 * 1024  # a deep recursion's traceback stays a tag, not megabytes


def _describe(error: BaseException, fault: Optional[type]) -> Tuple[str, str, BaseException]:
    """``(type name, message, exception for the stack)``: the user's own exception, also behind
    the runtime client's ``FaultException`` that the redirect raises in its place."""
    if fault is not None and isinstance(error, fault):
        original = error.__context__
        if original is not None:
            error = original
        else:  # a fault of the redirect's own making (a built-in module named as the handler)
            return str(getattr(error, "exception_type", None) or type(error).__name__), \
                str(getattr(error, "msg", "") or ""), error
    try:
        message = str(error)
    except Exception:
        message = ""
    kind = type(error)
    # the redirect's own HandlerNotFound / HandlerError go by their builtin base, as Datadog's
    # library reports a missing function (AttributeError)
    while kind.__module__.startswith("otel_dd_lambda") and kind.__bases__:
        kind = kind.__bases__[0]
    return kind.__name__, message, error


def report(error: BaseException, module_name: str, start_ns: int, provider: Any,
           fault: Optional[type] = None) -> None:
    """Record ``error`` (raised loading ``module_name``) as an error span and flush it. Never
    raises: the caller re-raises the error unchanged."""
    try:
        from opentelemetry.context import Context
        from opentelemetry.trace import Status, StatusCode

        from .._version import __version__

        get_tracer = getattr(provider, "get_tracer", None)
        if get_tracer is None:
            return
        type_name, message, shown = _describe(error, fault)
        stack = "".join(traceback.format_exception(type(shown), shown, shown.__traceback__))
        if len(stack) > _MAX_STACK:
            stack = "...\n" + stack[-_MAX_STACK:]  # the innermost frames are the informative ones
        attributes = {
            # the Datadog span fields (the exporter maps these keys onto them)
            "operation.name": "aws.lambda",
            "service.name": "aws.lambda",
            "resource.name": module_name,
            "span.type": "serverless",
            # datadog_lambda's tags for an error outside the handler
            "error.type": type_name,
            "error.message": message,
            "error.stack": stack,
            "error.status": 500,
            "resource_names": module_name,
            "operation_name": "aws.lambda",
            "status": "error",
        }
        tracer = get_tracer("otel_dd_lambda", __version__)
        span = tracer.start_span("aws.lambda", context=Context(), attributes=attributes, start_time=start_ns)
        span.set_status(Status(StatusCode.ERROR, message or type_name))
        span.end()
    except Exception:
        logger.debug("recording the init error failed", exc_info=True)
        return
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        try:
            force_flush(FLUSH_TIMEOUT_MS)
        except Exception:
            logger.debug("flushing the init error failed", exc_info=True)
