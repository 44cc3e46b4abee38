"""Coexistence with OpenTelemetry's own Lambda instrumentation (``opentelemetry-instrumentation-aws-lambda``,
as OTel's Lambda layer and ``opentelemetry-instrument`` load it).

What that instrumentation does (its 0.57b0 code): at ``instrument()`` it imports the module named by
``ORIG_HANDLER`` (else ``_HANDLER``) and replaces the handler attribute with a wrapt
``FunctionWrapper``; per call it extracts a parent from ``event["headers"]`` only, opens a
SERVER/CONSUMER span named after the handler (tracer ``opentelemetry.instrumentation.aws_lambda``),
calls the handler inside it, then ``force_flush``-es the global provider with a fixed timeout.
Left alone around our handler it yields a second invocation span, in another trace.

The rule here: where this package instruments the handler, our span is the one invocation span
(its parent comes from ``extract_context``: SQS/SNS/EventBridge ``_datadog``, X-Ray, Step
Functions..., which their extractor cannot see; it carries the trigger tags, span links, cold start,
the impending-timeout watchdog and a flush bounded by the remaining time). Theirs steps aside:

1. ``step_aside()`` (run after ``opentelemetry-instrument`` has loaded every instrumentor, see
   ``distro.post_instrument``): their wrapper around our handler is taken off the module, so it is
   never called; when this package was configured (``configure()`` ran, e.g. through our
   configurator) a handler of theirs that is not ours is wrapped by ours instead.
2. ``supersede_current()`` (our wrapper's first step): where their wrapper still runs around ours
   (they wrapped it after step 1 could run, e.g. a layer script calling ``instrument()`` itself),
   their span is marked ``otel_dd_lambda.superseded`` and ``without_superseded`` keeps it out of our
   Datadog exporter. Other exporters still receive it, with that attribute to filter on.
3. ``datadog_export_present()``: ``configure()`` adds no second Datadog exporter to a provider that
   already has one (``OTEL_TRACES_EXPORTER=datadog`` through the SDK's configurator).
"""

from __future__ import annotations

import logging
import sys
from importlib import import_module
from typing import Any, Sequence

from . import config

logger = logging.getLogger(__name__)

AWS_LAMBDA_SCOPE = "opentelemetry.instrumentation.aws_lambda"  # their module and tracer name
SUPERSEDED = "otel_dd_lambda.superseded"
_MARK = "__otel_dd_lambda_wrapped__"  # set by runtime.wrapper.instrument_handler on its wrappers

_superseded_seen = False  # cheap exit for the exporter until a span was ever marked


def _is_theirs(handler: Any) -> bool:
    """A wrapt ``FunctionWrapper`` whose wrapper function is the AWS Lambda instrumentation's."""
    try:
        wrapper = getattr(handler, "_self_wrapper", None)
        return wrapper is not None and getattr(wrapper, "__module__", None) == AWS_LAMBDA_SCOPE
    except Exception:
        return False


def step_aside(wrap_plain: bool) -> str:
    """Take OTel's Lambda wrapper off the handler named by ``ORIG_HANDLER``/``_HANDLER``.

    Returns what was done: ``"restored"`` (their wrapper around ours: ours is back on the module),
    ``"wrapped"`` (``wrap_plain`` and a handler not ours: ours now wraps it, theirs is gone),
    ``"ours"`` (nothing of theirs around ours), ``"theirs"`` (left as it is: not ours and not
    ``wrap_plain``), ``"none"`` (no handler to look at). Their instrumentor stays flagged as
    instrumented, so a later ``instrument()`` call does not wrap again.
    """
    path = config.otel_lambda_handler_path()
    if not path or not config.in_lambda():
        return "none"
    module_name, dot, attribute = path.rpartition(".")
    module_name = module_name.strip("/").replace("/", ".")
    if not dot or not module_name or not attribute:
        return "none"
    module = sys.modules.get(module_name)
    if module is None:
        if not wrap_plain:
            return "none"  # not loaded by their instrumentor: nothing of theirs to remove
        try:
            module = import_module(module_name)  # as their instrumentor would have, at the same stage
        except Exception:
            # the runtime imports it again and reports the error as it always does
            logger.debug("handler module %s not importable yet", module_name, exc_info=True)
            return "none"
    handler = getattr(module, attribute, None)
    if handler is None:
        return "none"
    inner = handler.__wrapped__ if _is_theirs(handler) else handler
    if getattr(inner, _MARK, False):
        if inner is handler:
            return "ours"
        setattr(module, attribute, inner)
        return "restored"
    if not wrap_plain or not callable(inner):
        return "theirs"
    from .runtime.wrapper import instrument_handler

    setattr(module, attribute, instrument_handler(inner))
    return "wrapped"


def on_invocation(trace: Any, cold: bool) -> None:
    """Our wrapper's hook, before its span starts. Never raises."""
    supersede_current(trace)
    if cold:
        # Under opentelemetry-instrument, configure() ran before the runtime client set up its log
        # handler: Lambda's text format is extended now, once the handler exists.
        try:
            from .runtime import log_correlation

            log_correlation.extend_if_installed()
        except Exception:
            logger.debug("log format not extended", exc_info=True)


def supersede_current(trace: Any) -> None:
    """Mark OTel's Lambda span as superseded when it is the current span (our wrapper runs inside
    theirs). Never raises; free when their instrumentation was never imported."""
    global _superseded_seen
    if AWS_LAMBDA_SCOPE not in sys.modules:
        return
    try:
        span = trace.get_current_span()
        scope = getattr(span, "instrumentation_scope", None)
        if scope is None or getattr(scope, "name", None) != AWS_LAMBDA_SCOPE or not span.is_recording():
            return
        span.set_attribute(SUPERSEDED, True)
        _superseded_seen = True
    except Exception:
        logger.debug("could not mark OTel's Lambda span", exc_info=True)


def without_superseded(spans: Sequence[Any]) -> Sequence[Any]:
    """``spans`` without the ones ``supersede_current`` marked (the same object when none can be)."""
    if not _superseded_seen:
        return spans
    kept = []
    for span in spans:
        attributes = getattr(span, "attributes", None)
        if not (attributes and attributes.get(SUPERSEDED)):
            kept.append(span)
    return kept


def datadog_export_present(provider: Any) -> bool:
    """True when one of ``provider``'s span processors already exports with ``DatadogSpanExporter``
    (ours, or the SDK's Batch/Simple processor around it)."""
    try:
        from .exporters.datadog import DatadogSpanExporter

        multi = getattr(provider, "_active_span_processor", None)
        for processor in getattr(multi, "_span_processors", ()) or ():
            exporter = getattr(processor, "exporter", None) or getattr(processor, "span_exporter", None)
            if isinstance(exporter, DatadogSpanExporter):
                return True
    except Exception:
        logger.debug("could not inspect the provider's processors", exc_info=True)
    return False
