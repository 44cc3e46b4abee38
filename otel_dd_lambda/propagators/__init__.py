"""OTel ``TextMapPropagator``s for Datadog, AWS X-Ray and W3C, with Datadog's precedence.

- ``DatadogPropagator``: ``x-datadog-*`` headers (entry point ``datadog``).
- ``XRayPropagator``: ``X-Amzn-Trace-Id`` and Lambda's ``_X_AMZN_TRACE_ID`` (``datadog_xray``).
- ``DatadogCompositePropagator``: all styles, first valid wins, others become span links
  (``datadog_composite``); ``get_extracted_links(context)`` returns those links.
"""

from .composite import DatadogCompositePropagator
from .datadog import DatadogPropagator
from .precedence import EXTRACTED_LINKS_KEY, get_extracted_links
from .xray import XRayPropagator

__all__ = [
    "DatadogCompositePropagator",
    "DatadogPropagator",
    "XRayPropagator",
    "EXTRACTED_LINKS_KEY",
    "get_extracted_links",
]
