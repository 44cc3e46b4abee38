"""Datadog-format span export for OTel: the exporter and the Lambda span processor.

Names resolve on first use, so ``import otel_dd_lambda.exporters`` costs nothing until an
exporter is built.
"""

from typing import Any

__all__ = ["DatadogSpanExporter", "LambdaSpanProcessor"]

_LAZY = {
    "DatadogSpanExporter": "otel_dd_lambda.exporters.datadog",
    "LambdaSpanProcessor": "otel_dd_lambda.exporters.processor",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(list(globals()) + __all__)
