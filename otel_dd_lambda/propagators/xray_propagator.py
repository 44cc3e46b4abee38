"""``XRayPropagator``: the upstream ``AwsXRayPropagator`` with the gaps that ``xray`` closes.

In a module of its own because it imports the upstream propagator module, which nothing else on
the Lambda event path needs; ``otel_dd_lambda.propagators.xray.XRayPropagator`` loads it on
first use.
"""

from __future__ import annotations

from typing import Optional

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.aws.aws_xray_propagator import AwsXRayPropagator
from opentelemetry.propagators.textmap import CarrierT, Getter, Setter, default_setter

from .headers import logger, reader, write_headers
from .precedence import merge_into
from .xray import extract_span_context, inject_headers, lambda_span_context


class XRayPropagator(AwsXRayPropagator):
    """``AwsXRayPropagator`` with the gaps listed in ``xray`` closed (entry point ``datadog_xray``).

    Reads the carrier, then (unless told not to) Lambda's ``_X_AMZN_TRACE_ID`` as a last resort.
    """

    def __init__(self, use_lambda_environment: bool = True) -> None:
        self._use_env = use_lambda_environment

    def extract(
        self,
        carrier: CarrierT,
        context: Optional[Context] = None,
        getter: Optional[Getter[CarrierT]] = None,
    ) -> Context:
        if context is None:
            context = Context()
        try:
            span_context = extract_span_context(reader(carrier, getter))
            style = "xray"
            if span_context is None and self._use_env:
                existing = trace.get_current_span(context).get_span_context()
                if existing.is_valid and existing.is_remote:
                    return context  # the event's own context always wins over Lambda's
                span_context, style = lambda_span_context(), "xray-lambda"
        except Exception:
            logger.debug("X-Ray extraction failed", exc_info=True)
            return context
        if span_context is None:
            return context
        return merge_into(context, span_context, style)

    def inject(
        self,
        carrier: CarrierT,
        context: Optional[Context] = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        write_headers(carrier, context, setter, inject_headers, "X-Ray")
