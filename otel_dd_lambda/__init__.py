"""otel-dd-lambda: one trace across AWS Lambda, Datadog, AWS X-Ray and W3C, on OpenTelemetry.

The public names are imported on first use, so ``import otel_dd_lambda`` costs almost nothing
at cold start and each feature pays only for what it loads.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "configure": "otel_dd_lambda.configure",
    "instrument_handler": "otel_dd_lambda.wrapper",
    "extract_context": "otel_dd_lambda.extract",
    "EventContext": "otel_dd_lambda.extract",
    "inject": "otel_dd_lambda.injection",
    "get_trace_headers": "otel_dd_lambda.injection",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:  # pragma: no cover
    from .configure import configure
    from .extract import EventContext, extract_context
    from .injection import get_trace_headers, inject
    from .wrapper import instrument_handler


def __getattr__(name: str) -> Any:
    module_name = _PUBLIC.get(name)
    if module_name is None:
        raise AttributeError("module 'otel_dd_lambda' has no attribute %r" % name)
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
