"""Log correlation (``DD_LOGS_INJECTION``, on by default).

A ``logging`` record factory gives every record the ids of the span current when it is made:

- ``dd.trace_id``: Datadog's form, as ddtrace writes it in logs: the decimal low 64 bits for a
  64-bit trace, 32 lowercase hex digits when the trace id has a non-zero high half;
  ``dd.span_id``: decimal. ``"0"`` for both outside a span. ``dd.service``, ``dd.env``,
  ``dd.version`` as ddtrace adds them.
- ``otelTraceID`` (32 hex), ``otelSpanID`` (16 hex), ``otelTraceSampled`` (bool): the names
  OTel's own logging instrumentation uses, so formats written for it keep working.

Lambda's text log format (``LambdaLoggerHandler`` on the root logger) is extended to show the
Datadog ids, ``[dd.trace_id=... dd.span_id=...]`` before the message, as datadog_lambda does; the
JSON log format (``AWS_LAMBDA_LOG_FORMAT=JSON``) writes a record's extra attributes as keys, so
the ids appear there with no change to its formatter.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Tuple

_LAMBDA_TEXT_SUFFIX = "%(aws_request_id)s\t%(message)s"
_DD_FIELD = "[dd.trace_id=%(dd.trace_id)s dd.span_id=%(dd.span_id)s]\t"
_ZERO_IDS = ("0", "0", "0" * 32, "0" * 16, False)
# The runtime client's root handlers: the second one when AWS_LAMBDA_LOG_LEVEL is set.
_LAMBDA_HANDLERS = frozenset(("LambdaLoggerHandler", "LambdaLoggerHandlerWithFrameType"))

_installed_factory: Optional[Callable[..., logging.LogRecord]] = None
_previous_factory: Optional[Callable[..., logging.LogRecord]] = None


def format_ids(trace_id: int, span_id: int, sampled: bool) -> Tuple[str, str, str, str, bool]:
    """``(dd.trace_id, dd.span_id, otelTraceID, otelSpanID, otelTraceSampled)``."""
    dd_trace = "%032x" % trace_id if trace_id >> 64 else str(trace_id)
    return dd_trace, str(span_id), "%032x" % trace_id, "%016x" % span_id, sampled


def install(service: Optional[str] = None, env: Optional[str] = None, version: Optional[str] = None,
            lambda_format: bool = True) -> bool:
    """Install the record factory (idempotent) and extend Lambda's text format. Never raises."""
    global _installed_factory, _previous_factory
    try:
        if _installed_factory is not None and logging.getLogRecordFactory() is _installed_factory:
            if lambda_format:
                extend_lambda_formatters()
            return True
        from opentelemetry.trace import get_current_span

        previous = logging.getLogRecordFactory()
        service_value, env_value, version_value = service or "", env or "", version or ""
        cache: list = [0, 0, _ZERO_IDS]  # last (trace id, span id) and its strings

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                span_context = get_current_span().get_span_context()
                trace_id = span_context.trace_id
                span_id = span_context.span_id
                if trace_id and span_id:
                    if trace_id != cache[0] or span_id != cache[1]:
                        cache[2] = format_ids(trace_id, span_id, bool(span_context.trace_flags & 1))
                        cache[0], cache[1] = trace_id, span_id
                    values = cache[2]
                else:
                    values = _ZERO_IDS
                attrs = record.__dict__
                attrs["dd.trace_id"], attrs["dd.span_id"] = values[0], values[1]
                attrs["dd.service"], attrs["dd.env"], attrs["dd.version"] = (
                    service_value, env_value, version_value)
                attrs["otelTraceID"], attrs["otelSpanID"], attrs["otelTraceSampled"] = (
                    values[2], values[3], values[4])
            except Exception:
                pass  # a log line without ids beats a failed log call
            return record

        logging.setLogRecordFactory(factory)
        _installed_factory, _previous_factory = factory, previous
        if lambda_format:
            extend_lambda_formatters()
        return True
    except Exception:
        logging.getLogger(__name__).debug("log correlation not installed", exc_info=True)
        return False


def uninstall() -> None:
    """Put the previous record factory back (when ours is still the current one)."""
    global _installed_factory, _previous_factory
    if _installed_factory is not None and logging.getLogRecordFactory() is _installed_factory:
        logging.setLogRecordFactory(_previous_factory or logging.LogRecord)
    _installed_factory = _previous_factory = None


def extend_if_installed() -> int:
    """``extend_lambda_formatters()`` when the record factory is installed (the runtime client may
    have set up its log handler after ``install()``: under ``opentelemetry-instrument``)."""
    if _installed_factory is None or logging.getLogRecordFactory() is not _installed_factory:
        return 0
    return extend_lambda_formatters()


def extend_lambda_formatters(root: Optional[logging.Logger] = None) -> int:
    """Add the Datadog ids to Lambda's text formatter on the root handlers; returns how many."""
    changed = 0
    for handler in (root or logging.getLogger()).handlers:
        formatter = handler.formatter
        if handler.__class__.__name__ not in _LAMBDA_HANDLERS or type(formatter) is not logging.Formatter:
            continue
        fmt = formatter._fmt or ""
        if "%(dd.trace_id)s" in fmt or _LAMBDA_TEXT_SUFFIX not in fmt:
            continue  # already extended, or a format this module does not know
        new_fmt = fmt.replace(_LAMBDA_TEXT_SUFFIX, "%(aws_request_id)s\t" + _DD_FIELD + "%(message)s", 1)
        extended = logging.Formatter(new_fmt, formatter.datefmt)
        extended.converter = formatter.converter  # keep UTC timestamps if Lambda set them
        handler.setFormatter(extended)
        changed += 1
    return changed
