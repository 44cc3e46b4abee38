"""One propagator for every style, with Datadog's precedence (see ``precedence``).

Extraction tries the configured styles in order (default: datadog, tracecontext, the carrier's
X-Ray header, then Lambda's ``_X_AMZN_TRACE_ID``); the order comes from
``DD_TRACE_PROPAGATION_STYLE_EXTRACT`` (or ``DD_TRACE_PROPAGATION_STYLE``), else
``OTEL_PROPAGATORS``. Injection writes every configured style from the same span, keeping the
``dd=`` tracestate member and X-Ray's ``Lineage`` current.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import CarrierT, Getter, Setter, TextMapPropagator, default_setter
from opentelemetry.trace import Link, SpanContext

from .. import config
from . import datadog, tracecontext, xray
from .headers import HeaderReader, logger, reader
from .precedence import resolve, set_extracted

_EXTRACTORS: Dict[str, Callable[[HeaderReader], Optional[SpanContext]]] = {
    config.DATADOG: datadog.extract_span_context,
    config.TRACECONTEXT: tracecontext.extract_span_context,
    config.XRAY: xray.extract_span_context,
    config.XRAY_LAMBDA: lambda get: xray.lambda_span_context(),
}
_INJECTORS: Dict[str, Callable[[SpanContext, Any], None]] = {
    config.DATADOG: datadog.inject_headers,
    config.TRACECONTEXT: tracecontext.inject_headers,
    config.XRAY: xray.inject_headers,
}
_FIELDS: Dict[str, Set[str]] = {
    config.DATADOG: datadog.DatadogPropagator().fields,
    config.TRACECONTEXT: {tracecontext.TRACEPARENT, tracecontext.TRACESTATE},
    config.XRAY: {xray.TRACE_HEADER_KEY},
}


class DatadogCompositePropagator(TextMapPropagator):
    """Datadog, W3C and X-Ray with Datadog's precedence (entry point ``datadog_composite``).

    ``extract`` puts the winning context in the returned ``Context`` and the other traces'
    contexts as ``terminated_context`` links (``precedence.get_extracted_links``).
    """

    def __init__(
        self,
        extract_styles: Optional[Sequence[str]] = None,
        inject_styles: Optional[Sequence[str]] = None,
    ) -> None:
        if extract_styles is None:
            extract_styles = config.propagation_styles("extract")
        if inject_styles is None:
            inject_styles = config.propagation_styles("inject")
        self._extract = [(s, _EXTRACTORS[s]) for s in extract_styles if s in _EXTRACTORS]
        self._inject = [_INJECTORS[s] for s in inject_styles if s in _INJECTORS]
        self._fields = set().union(*(_FIELDS[s] for s in inject_styles if s in _FIELDS))
        self._baggage = None
        if config.BAGGAGE in extract_styles or config.BAGGAGE in inject_styles:
            from opentelemetry.baggage.propagation import W3CBaggagePropagator

            self._baggage = W3CBaggagePropagator()
            self._fields |= self._baggage.fields
        self.extract_styles: Tuple[str, ...] = tuple(s for s, _ in self._extract)

    def extract_from_reader(self, get: HeaderReader) -> Tuple[Optional[SpanContext], List[Link]]:
        """The parent and the ``terminated_context`` links from any header reader. Never raises."""
        found = []
        for style, extract in self._extract:
            try:
                span_context = extract(get)
            except Exception:  # a parser bug must not reach the user's function
                logger.debug("%s extraction failed", style, exc_info=True)
                continue
            if span_context is not None:
                found.append((style, span_context))
        if len(found) == 1:
            return found[0][1], []
        return resolve(found)

    def extract(
        self,
        carrier: CarrierT,
        context: Optional[Context] = None,
        getter: Getter[CarrierT] = None,  # type: ignore[assignment]
    ) -> Context:
        if context is None:
            context = Context()
        span_context, links = self.extract_from_reader(reader(carrier, getter))
        if span_context is not None or links:
            context = set_extracted(context, span_context, links)
        if self._baggage is not None:
            try:
                context = self._baggage.extract(carrier, context, getter) if getter else self._baggage.extract(carrier, context)
            except Exception:
                logger.debug("baggage extraction failed", exc_info=True)
        return context

    def headers(self, span_context: SpanContext) -> Dict[str, str]:
        """Every configured style's headers for ``span_context`` as a new dict."""
        out: Dict[str, str] = {}
        setitem = out.__setitem__
        for inject in self._inject:
            inject(span_context, setitem)
        return out

    def inject(
        self,
        carrier: CarrierT,
        context: Optional[Context] = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid:
            try:
                for key, value in self.headers(span_context).items():
                    setter.set(carrier, key, value)
            except Exception:
                logger.debug("injection failed", exc_info=True)
        if self._baggage is not None:
            self._baggage.inject(carrier, context, setter)

    @property
    def fields(self) -> Set[str]:
        return set(self._fields)
