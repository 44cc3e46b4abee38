"""OTel ``TextMapPropagator``s for Datadog, AWS X-Ray and W3C, with Datadog's precedence.

- ``DatadogPropagator``: ``x-datadog-*`` headers (entry point ``datadog``).
- ``XRayPropagator``: ``X-Amzn-Trace-Id`` and Lambda's ``_X_AMZN_TRACE_ID`` (``datadog_xray``).
- ``DatadogCompositePropagator``: all styles, first valid wins, others become span links
  (``datadog_composite``); ``get_extracted_links(context)`` returns those links.

The names are imported on first use (PEP 562): ``from otel_dd_lambda.propagators import ddstate``
(the exporter's only need) loads neither the propagators nor OTel's propagator API.
"""

from typing import TYPE_CHECKING, Any

_PUBLIC = {
    "DatadogCompositePropagator": "composite",
    "DatadogPropagator": "datadog",
    "XRayPropagator": "xray_propagator",
    "EXTRACTED_LINKS_KEY": "precedence",
    "get_extracted_links": "precedence",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:  # the names __getattr__ below returns (redundant aliases mark re-exports)
    from .composite import DatadogCompositePropagator as DatadogCompositePropagator
    from .datadog import DatadogPropagator as DatadogPropagator
    from .precedence import EXTRACTED_LINKS_KEY as EXTRACTED_LINKS_KEY
    from .precedence import get_extracted_links as get_extracted_links
    from .xray_propagator import XRayPropagator as XRayPropagator


def __getattr__(name: str) -> Any:
    module_name = _PUBLIC.get(name)
    if module_name is None:  # submodules (`from . import datadog`) are found by the import system
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    import importlib

    value = getattr(importlib.import_module("." + module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_PUBLIC))
