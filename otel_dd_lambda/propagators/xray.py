"""AWS X-Ray ``X-Amzn-Trace-Id``, built on ``opentelemetry-propagator-aws-xray``.

What this adds to the upstream ``AwsXRayPropagator``:

- the header name is case-insensitive (HTTP APIs deliver ``x-amzn-trace-id``);
- a header without ``Sampled`` (or with ``Sampled=?``, undecided) is sampled, not dropped;
- ``Lineage`` (Lambda's recursion detection) and unknown keys are kept and written back on
  re-injection, carried between hops in an ``xray`` tracestate member;
- Lambda's ``_X_AMZN_TRACE_ID`` is a separate, last-resort style (``xray-lambda``): it never
  overrides a context that arrived with the event, and its ``Sampled=0`` (what Lambda sets when
  active tracing is off) is not taken as a decision to drop every span.

``Self`` (added by ALB for its own segment) is not propagated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from opentelemetry.trace import SpanContext

from .. import config, ids
from . import ddstate
from .headers import logger
from .precedence import remote_span_context, trace_state

if TYPE_CHECKING:
    from .headers import HeaderReader

# The names opentelemetry.propagators.aws.aws_xray_propagator gives them; that module is imported
# only with XRayPropagator (see __getattr__ below).
TRACE_HEADER_KEY = "X-Amzn-Trace-Id"
AWS_TRACE_HEADER_ENV_KEY = "_X_AMZN_TRACE_ID"
HEADER = TRACE_HEADER_KEY.lower()
ENV_VAR = AWS_TRACE_HEADER_ENV_KEY
MEMBER_KEY = "xray"  # tracestate member carrying Lineage and unknown keys between hops
MAX_EXTRA_CHARS = 256
_DROPPED_KEYS = frozenset(("root", "parent", "sampled", "self"))
_EXTRA_CHARS = frozenset(map(chr, range(0x21, 0x7F))) - set(",=;~")


class XRayHeader:
    """A parsed ``X-Amzn-Trace-Id``: ids, the sampling decision, and keys to carry on."""

    __slots__ = ("trace_id", "parent_id", "sampled", "extra")

    def __init__(self, trace_id: int, parent_id: int, sampled: Optional[bool], extra: Tuple[Tuple[str, str], ...]):
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.sampled = sampled  # None: no decision in the header
        self.extra = extra


def parse_header(value: Optional[str]) -> Optional[XRayHeader]:
    """Parse ``Root=1-..;Parent=..;Sampled=1;Lineage=..``; None when Root or Parent is invalid."""
    if not value:
        return None
    trace_id = parent_id = None
    sampled: Optional[bool] = None
    extra = []
    for item in value.split(";"):
        key, sep, val = item.partition("=")
        key, val = key.strip(), val.strip()
        lowered = key.lower()
        if lowered == "root":
            trace_id = ids.parse_xray_trace_id(val)
        elif lowered == "parent":
            parent_id = ids.parse_hex_span_id(val)
        elif lowered == "sampled":
            sampled = ids.parse_xray_sampled(val)
        elif sep and key and lowered not in _DROPPED_KEYS:
            if _EXTRA_CHARS.issuperset(key) and _EXTRA_CHARS.issuperset(val):
                extra.append((key, val))
    if trace_id is None or parent_id is None:
        logger.debug("X-Ray header without a valid Root and Parent: ignored")
        return None
    return XRayHeader(trace_id, parent_id, sampled, tuple(extra))


def _extra_member(extra: Tuple[Tuple[str, str], ...]) -> Optional[str]:
    if not extra:
        return None
    value = ";".join("%s~%s" % kv for kv in extra)
    return value if len(value) <= MAX_EXTRA_CHARS else None


def _to_span_context(header: XRayHeader, priority: Optional[int]) -> SpanContext:
    members: Dict[str, str] = {}
    if priority is not None:
        members[ddstate.MEMBER_KEY] = ddstate.format_dd_member(priority, None, None)
    extra = _extra_member(header.extra)
    if extra:
        members[MEMBER_KEY] = extra
    return remote_span_context(header.trace_id, header.parent_id, header.sampled is not False, trace_state(members))


def extract_span_context(get: HeaderReader) -> Optional[SpanContext]:
    """The context of an ``X-Amzn-Trace-Id`` header in a carrier (an upstream X-Ray decision)."""
    header = parse_header(get(HEADER))
    return _to_span_context(header, None) if header else None


def lambda_span_context(value: Optional[str] = None) -> Optional[SpanContext]:
    """The context of Lambda's ``_X_AMZN_TRACE_ID`` (read from the environment by default).

    ``Sampled=0`` there means "X-Ray active tracing is off", not "drop this trace": no context is
    returned, so the invocation starts its own trace and its own sampler decides. When sampled,
    the Datadog priority is 2 (user keep), as Datadog's Lambda library gives it.
    """
    if value is None:
        value = config.lambda_trace_header()
    header = parse_header(value)
    if header is None or header.sampled is False:
        return None
    return _to_span_context(header, ids.USER_KEEP)


def header_value(span_context: SpanContext) -> str:
    """``X-Amzn-Trace-Id`` for an outgoing request, with carried ``Lineage``/unknown keys."""
    value = "Root=%s;Parent=%s;Sampled=%s" % (
        ids.format_xray_trace_id(span_context.trace_id),
        ids.format_span_id_hex(span_context.span_id),
        ids.format_xray_sampled(span_context.trace_flags.sampled),
    )
    extra = span_context.trace_state.get(MEMBER_KEY)
    if extra:
        pairs = [item.partition("~") for item in extra.split(";")]
        value += "".join(";%s=%s" % (k, v) for k, sep, v in pairs if sep and k)
    return value


def inject_headers(span_context: SpanContext, set_header: Any, state: object = None) -> None:
    """Write ``X-Amzn-Trace-Id`` with ``set_header`` (``state`` is the composite's, unused)."""
    set_header(TRACE_HEADER_KEY, header_value(span_context))


if TYPE_CHECKING:
    pass


def __getattr__(name: str) -> Any:
    # PEP 562: XRayPropagator subclasses the upstream propagator, whose module only it needs
    # (the composite and the Lambda event path do not, and cold start pays for every import).
    if name == "XRayPropagator":
        from .xray_propagator import XRayPropagator

        globals()[name] = XRayPropagator
        return XRayPropagator
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
