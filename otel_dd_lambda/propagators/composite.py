"""One propagator for every style, with Datadog's precedence (see ``precedence``).

Extraction tries the configured styles in order (default: datadog, tracecontext, the carrier's
X-Ray header, then Lambda's ``_X_AMZN_TRACE_ID``); the order comes from
``DD_TRACE_PROPAGATION_STYLE_EXTRACT`` (or ``DD_TRACE_PROPAGATION_STYLE``), else
``OTEL_PROPAGATORS``. The first valid context is the parent; a later one of another trace
becomes a ``terminated_context`` span link, carried in the returned ``Context`` under
``EXTRACTED_LINKS_KEY`` (read it with ``get_extracted_links(context)``). Injection writes every
configured style from the same span, keeping the ``dd=`` tracestate member and X-Ray's
``Lineage`` current.

Known limitation of ``OTEL_PROPAGATORS=datadog,tracecontext,xray``: OTel's own
``CompositePropagator`` runs each propagator in turn and lets the last one that finds a context
win. Our ``datadog`` and ``datadog_xray`` propagators never override a context found before them
(they add a link instead), but OTel's ``tracecontext`` and ``xray`` propagators do, so the exact
Datadog precedence among several styles needs ``OTEL_PROPAGATORS=datadog_composite`` (this
class; its order then comes from ``DD_TRACE_PROPAGATION_STYLE_EXTRACT`` or the default above).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    DefaultGetter,
    DefaultSetter,
    Getter,
    Setter,
    TextMapPropagator,
    default_setter,
)
from opentelemetry.trace import Link, SpanContext

from .. import config
from . import baggage, datadog, tracecontext, xray
from .headers import logger, reader, trace_headers
from .precedence import resolve, set_extracted, span_ids

if TYPE_CHECKING:  # annotations only: subscripting typing generics at import costs cold-start time
    from .headers import HeaderReader

    Extracted = Tuple[Optional[SpanContext], List[Link]]  # (the parent or None, terminated_context links)

_EXTRACTORS: Dict[str, Callable[[HeaderReader], Optional[SpanContext]]] = {
    config.DATADOG: datadog.extract_span_context,
    config.TRACECONTEXT: tracecontext.extract_span_context,
    config.XRAY: xray.extract_span_context,
    config.XRAY_LAMBDA: lambda get: xray.lambda_span_context(),
}
# The header whose absence means a style has nothing to extract (None: it reads no header), and
# every header the style reads: a plain dict carrier is read once for all the configured styles.
_KEY_HEADER: Dict[str, Optional[str]] = {
    config.DATADOG: datadog.TRACE_ID,
    config.TRACECONTEXT: tracecontext.TRACEPARENT,
    config.XRAY: xray.HEADER,
    config.XRAY_LAMBDA: None,
}
_READS: Dict[str, Tuple[str, ...]] = {
    config.DATADOG: (datadog.TRACE_ID, datadog.PARENT_ID, datadog.SAMPLING_PRIORITY, datadog.ORIGIN, datadog.TAGS),
    config.TRACECONTEXT: (tracecontext.TRACEPARENT, tracecontext.TRACESTATE),
    config.XRAY: (xray.HEADER,),
    config.XRAY_LAMBDA: (),
}
# Headers a style's writers put beside those it reads, and that no style reads.
_UNREAD: Dict[str, Tuple[str, ...]] = {config.DATADOG: (datadog.SAMPLED,)}
_INJECTORS: Dict[str, Callable[[SpanContext, Any, Optional[datadog.InjectState]], None]] = {
    config.DATADOG: datadog.inject_headers,
    config.TRACECONTEXT: tracecontext.inject_headers,
    config.XRAY: xray.inject_headers,
}
_FIELDS: Dict[str, Set[str]] = {
    config.DATADOG: datadog.DatadogPropagator().fields,
    config.TRACECONTEXT: {tracecontext.TRACEPARENT, tracecontext.TRACESTATE},
    config.XRAY: {xray.TRACE_HEADER_KEY},
}

# Names read on every extraction, as module globals.
_DD_TRACE_ID, _TRACEPARENT, _TRACESTATE = datadog.TRACE_ID, tracecontext.TRACEPARENT, tracecontext.TRACESTATE
_dd_extract = datadog.extract_span_context


def _w3c_after(primary: SpanContext, get: HeaderReader) -> Optional[SpanContext]:
    """The W3C context when it can change what ``resolve`` returns, else None.

    The usual carrier (ddtrace, or this package, wrote both styles) has the same trace and span
    in ``traceparent`` and only a ``dd`` member in ``tracestate``: W3C then adds nothing, so the
    tracestate is not parsed and no second ``SpanContext`` is built.
    """
    raw = get(tracecontext.TRACEPARENT)
    if raw is None or _w3c_repeats(primary, raw, get(tracecontext.TRACESTATE)):
        return None
    return tracecontext.extract_span_context(get)


def _w3c_repeats(primary: SpanContext, traceparent: str, tracestate: Optional[str]) -> bool:
    """Whether W3C headers hold the primary's trace and span and no vendor but ``dd``: then W3C
    can change nothing in ``resolve`` (``closer_parent`` returns the primary)."""
    # Comparing the ids as text needs no parsing: whether this traceparent is valid or not, with
    # the primary's ids and a dd-only tracestate the answer is the same.
    return traceparent[3:52] == "%032x-%016x" % span_ids(primary) and (
        tracestate is None or (tracestate[:3] == "dd=" and "," not in tracestate)
    )


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
        self._extract = [(s, _EXTRACTORS[s], _KEY_HEADER[s]) for s in extract_styles if s in _EXTRACTORS]
        self._reads = tuple(dict.fromkeys(name for s, _, _ in self._extract for name in _READS[s]))
        self.read_set = frozenset(self._reads)  # every header the styles read
        # A carrier whose keys are all in this set holds trace headers only (every _datadog
        # object): read, or written beside them and read by no style
        self.header_set = self.read_set.union(*(_UNREAD.get(s, ()) for s, _, _ in self._extract))
        self._inject = [_INJECTORS[s] for s in inject_styles if s in _INJECTORS]
        # Datadog and W3C both derive their values from the dd= member: parse it once.
        self._shared_state = config.DATADOG in inject_styles or config.TRACECONTEXT in inject_styles
        self._fields = set().union(*(_FIELDS[s] for s in inject_styles if s in _FIELDS))
        # W3C baggage rides beside the trace styles: it is not a context, so never a parent or a link.
        self.extracts_baggage = config.BAGGAGE in extract_styles
        self._injects_baggage = config.BAGGAGE in inject_styles
        self._baggage_limits = config.baggage_limits()
        if self._injects_baggage:
            self._fields.add(baggage.HEADER)
        self.extract_styles: Tuple[str, ...] = tuple(s for s, _, _ in self._extract)
        # The usual order puts Datadog first, and the usual carrier (written by ddtrace or this
        # package) holds no other style, or W3C repeating the Datadog context: then the answer is
        # the Datadog context, found without the loop's per-style dispatch (_datadog_first).
        # Precomputed: whether this order allows it, and the later styles' key headers other than
        # W3C's (which is compared), all of which must be absent.
        later = self.extract_styles[1:]
        self._datadog_first = self.extract_styles[:1] == (config.DATADOG,) and all(_KEY_HEADER[s] for s in later)
        self._later_keys = frozenset(_KEY_HEADER[s] for s in later if s != config.TRACECONTEXT)

    def extract_from_reader(self, get: HeaderReader) -> Extracted:
        """The parent and the ``terminated_context`` links from any header reader. Never raises."""
        return self._extract_with(get, None)

    def extract_from_carrier(self, carrier: Any, keys_checked: bool = False) -> Extracted:
        """``extract_from_reader`` for a carrier read with OTel's default getter. Never raises.

        A plain dict (every Lambda event's headers or ``_datadog``) is read once, up front, for
        the headers of all the configured styles; a style whose key header is absent is skipped.
        ``keys_checked``: the caller has seen ``carrier.keys() <= self.header_set`` (a dict).
        """
        if type(carrier) is not dict:
            return self._extract_with(reader(carrier), None)
        headers = trace_headers(carrier, self._reads, self.read_set, keys_checked)
        if self._datadog_first and _DD_TRACE_ID in headers and headers.keys().isdisjoint(self._later_keys):
            try:
                primary = _dd_extract(headers.get)
            except Exception:  # the loop runs it again, and logs
                primary = None
            if primary is not None:
                raw = headers.get(_TRACEPARENT)
                if raw is None or _w3c_repeats(primary, raw, headers.get(_TRACESTATE)):
                    return primary, []
        return self._extract_with(headers.get, headers)

    def _extract_with(self, get: HeaderReader, present: Optional[Dict[str, str]]) -> Extracted:
        """The loop over the styles; ``present``: the carrier's trace headers when known up front
        (a style whose key header is not among them is skipped)."""
        found: List[Tuple[str, SpanContext]] = []
        for style, extract, key_header in self._extract:
            if present is not None and key_header is not None and key_header not in present:
                continue
            try:
                if found and style == config.TRACECONTEXT:
                    span_context = _w3c_after(found[0][1], get)
                else:
                    span_context = extract(get)
            except Exception:  # a parser bug must not reach the user's function
                logger.debug("%s extraction failed", style, exc_info=True)
                continue
            if span_context is not None:
                found.append((style, span_context))
        if not found:
            return None, []
        if len(found) == 1:
            return found[0][1], []
        return resolve(found)

    def extract(
        self,
        carrier: CarrierT,
        context: Optional[Context] = None,
        getter: Optional[Getter[CarrierT]] = None,
    ) -> Context:
        try:
            if type(carrier) is dict and (getter is None or type(getter) is DefaultGetter):
                span_context, links = self.extract_from_carrier(carrier)
            else:
                span_context, links = self.extract_from_reader(reader(carrier, getter))
        except Exception:  # a hostile carrier must not reach the user's function
            logger.debug("extraction failed", exc_info=True)
            span_context, links = None, []
        if span_context is not None or links:
            context = set_extracted(context, span_context, links)
        elif context is None:
            context = Context()
        if self.extracts_baggage:
            try:
                items = self._baggage_of(carrier, getter)
                if items:
                    context = baggage.with_items(context, items)
            except Exception:  # a hostile carrier or getter must not reach the user's function
                logger.debug("baggage extraction failed", exc_info=True)
        return context

    def _baggage_of(self, carrier: Any, getter: Optional[Getter[Any]]) -> Optional[Dict[str, str]]:
        if type(carrier) is dict and (getter is None or type(getter) is DefaultGetter):
            return self.extract_baggage(carrier)
        value = reader(carrier, getter)(baggage.HEADER)  # (within the readers' size cap)
        return baggage.parse(value, *self._baggage_limits) if value else None

    def extract_baggage(self, carrier: Any) -> Optional[Dict[str, str]]:
        """The W3C baggage items of a dict carrier (None: none, or the style is off). Never raises."""
        if not self.extracts_baggage or type(carrier) is not dict:
            return None
        try:
            value = baggage.header_value(carrier)
            return baggage.parse(value, *self._baggage_limits) if value else None
        except Exception:  # only our own code runs here: a bug, with its traceback
            logger.debug("baggage extraction failed", exc_info=True)
            return None

    def baggage_header(self, context: Optional[Context]) -> Optional[str]:
        """The ``baggage`` header for the OTel baggage of ``context`` (None: none, or the style is off)."""
        if not self._injects_baggage:
            return None
        items = baggage.current_items(context)
        if not items:
            return None
        return baggage.format_items(items.items(), *self._baggage_limits) or None

    def headers(self, span_context: SpanContext) -> Dict[str, str]:
        """Every configured style's headers for ``span_context`` as a new dict."""
        out: Dict[str, str] = {}
        self._write(span_context, out.__setitem__)
        return out

    def _write(self, span_context: SpanContext, set_header: Callable[[str, str], None]) -> None:
        state = datadog.inject_state(span_context) if self._shared_state else None
        for inject in self._inject:
            inject(span_context, set_header, state)

    def inject(
        self,
        carrier: CarrierT,
        context: Optional[Context] = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid:
            if isinstance(carrier, dict) and type(setter) is DefaultSetter:
                try:  # DefaultSetter's own write, without a Python-level call per header
                    self._write(span_context, carrier.__setitem__)
                except Exception:  # only our own code runs here: a bug, with its traceback
                    logger.debug("injection failed", exc_info=True)
            else:
                try:
                    for key, value in self.headers(span_context).items():
                        setter.set(carrier, key, value)
                except Exception as exc:  # the user's setter or carrier refused a header
                    logger.debug("injection failed: %r", exc)
        if self._injects_baggage:  # with or without a span, as ddtrace
            try:
                header = self.baggage_header(context)
                if header is not None:
                    setter.set(carrier, baggage.HEADER, header)
            except Exception as exc:  # the user's setter or carrier refused the header
                logger.debug("baggage injection failed: %r", exc)

    @property
    def fields(self) -> Set[str]:
        return set(self._fields)
