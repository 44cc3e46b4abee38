"""otel-dd-lambda: one trace across AWS Lambda, Datadog, AWS X-Ray and W3C, on OpenTelemetry.

The public names are imported on first use, so ``import otel_dd_lambda`` costs almost nothing
at cold start and each feature pays only for what it loads.
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

_PUBLIC = {
    "configure": "otel_dd_lambda.runtime.configure",
    "instrument_handler": "otel_dd_lambda.runtime.wrapper",
    "extract_context": "otel_dd_lambda.extract",
    "EventContext": "otel_dd_lambda.extract",
    "inject": "otel_dd_lambda.injection",
    "get_trace_headers": "otel_dd_lambda.injection",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:  # pragma: no cover
    # the names above, for type checkers (``as`` marks each as re-exported)
    from .extract import EventContext as EventContext
    from .extract import extract_context as extract_context
    from .injection import get_trace_headers as get_trace_headers
    from .injection import inject as inject
    from .runtime.configure import configure as configure
    from .runtime.wrapper import instrument_handler as instrument_handler


def __getattr__(name: str) -> Any:
    module_name = _PUBLIC.get(name)
    if module_name is None:
        raise AttributeError("module 'otel_dd_lambda' has no attribute %r" % name)
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
