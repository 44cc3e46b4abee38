"""Step Functions: the context object, with trace and span ids derived exactly as Datadog does.

``H(s)`` = SHA-256 of ``s`` as a 256-bit integer; ``hi`` = bits 255..192 and ``lo`` = bits
191..128, each masked to 63 bits (0 becomes 1). Parent span = ``hi(exec#state#entered[#retry#redrive])``;
trace id = ``lo(exec_id)`` with ``hi(exec_id)`` as the high half (``_dd.p.tid``, always 16 hex
digits here: the reference drops leading zeros and ddtrace then rejects the tag downstream).
When the payload carries ``x-datadog-trace-id`` (a Lambda or host started the trace), that id
and its ``_dd.p.tid`` are used instead.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from opentelemetry.trace import SpanContext, TraceFlags

from .. import ids
from ..propagators import ddstate
from ..propagators.precedence import trace_state_with_dd
from .common import DATADOG_KEY, logger

_MASK63 = 0x7FFF_FFFF_FFFF_FFFF
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_STATE = ddstate.format_dd_member(ids.AUTO_KEEP, None, None)
_HEX = frozenset("0123456789abcdef")
# A dict without any of these keys is not (and does not wrap) a context object: callers on hot
# paths test ``not event.keys().isdisjoint(CONTEXT_OBJECT_KEYS)`` (one C call) before calling.
CONTEXT_OBJECT_KEYS = frozenset(("Execution", "Payload", DATADOG_KEY))


def _halves(text: str) -> Tuple[int, int]:
    from hashlib import sha256  # here, not at import: OpenSSL's hashlib costs ~1.5 ms of cold start

    digest = int.from_bytes(sha256(text.encode("utf-8", "surrogatepass")).digest()[:16], "big")
    return ((digest >> 64) & _MASK63) or 1, (digest & _MASK63) or 1


def context_object(event: Any) -> Optional[Dict[str, Any]]:
    """The Step Functions context object in ``event`` (unwrapping ``Payload`` and ``_datadog``)."""
    if type(event) is not dict:
        return None
    payload = event.get("Payload")
    if type(payload) is dict:
        event = payload
    if "Execution" in event and "State" in event and "StateMachine" in event:
        return event
    dd = event.get(DATADOG_KEY)
    if type(dd) is dict and "Execution" in dd and "State" in dd and "StateMachine" in dd and "serverless-version" in dd:
        return dd
    return None


def event_span_context(event: Any) -> Optional[SpanContext]:
    """The parent of a Step Functions event (its context object, maybe wrapped), else None."""
    obj = context_object(event)
    return span_context(obj) if obj is not None else None


def _tid_from_tags(tags: Any) -> int:
    # Lenient on length: an upstream reference library may have written it without padding.
    if type(tags) is not str:
        return 0
    for item in tags.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "_dd.p.tid":
            value = value.strip()
            if 0 < len(value) <= 16 and _HEX.issuperset(value):
                return int(value, 16)
            return 0
    return 0


def _dd_trace_id(dd: Any) -> Optional[int]:
    if type(dd) is not dict or "x-datadog-trace-id" not in dd:
        return None
    low = ids.parse_dd_id(dd.get("x-datadog-trace-id"))
    if low is None:
        return None
    return (_tid_from_tags(dd.get("x-datadog-tags")) << 64) | low


def span_context(obj: Dict[str, Any]) -> Optional[SpanContext]:
    """The parent ``SpanContext`` for a context object from :func:`context_object`, else None."""
    try:
        execution, state = obj["Execution"], obj["State"]
        if type(execution) is not dict or type(state) is not dict:
            return None
        exec_id = execution.get("Id")
        if obj.get("serverless-version") == "v1":
            trace_id = _dd_trace_id(obj)
            root = obj.get("RootExecutionId")
        else:
            inp = execution.get("Input")
            trace_id = _dd_trace_id(inp.get(DATADOG_KEY) if type(inp) is dict else None)
            root = exec_id
        if trace_id is None:
            if type(root) is not str:
                return None
            high, low = _halves(root)
            trace_id = (high << 64) | low
        retry = state.get("RetryCount", 0)
        redrive = execution.get("RedriveCount", 0)
        key = "%s#%s#%s" % (exec_id, state.get("Name"), state.get("EnteredTime"))
        if retry != 0 or redrive != 0:
            key += "#%s#%s" % (retry, redrive)
        parent = _halves(key)[0]
    except Exception:  # a hostile context object is "no context"
        logger.debug("Step Functions context object malformed: ignored", exc_info=True)
        return None
    return SpanContext(trace_id, parent, True, _SAMPLED, trace_state_with_dd(None, _STATE))


def state_machine_arn(obj: Optional[Dict[str, Any]]) -> Optional[str]:
    machine = obj.get("StateMachine") if obj else None
    arn = machine.get("Id") if type(machine) is dict else None
    return arn if type(arn) is str else None
