"""The ID model: every conversion between OTel, Datadog and X-Ray identifiers.

OTel / W3C   trace id: 128-bit int (32 hex)       span id: 64-bit (16 hex)   trace flags bit 0
Datadog      trace id: low 64 bits, decimal;      parent id: decimal         priority -1, 0, 1, 2
             high 64 bits as ``_dd.p.tid`` (16 lowercase hex) in ``x-datadog-tags``
X-Ray        ``Root=1-<8 hex epoch>-<24 hex>`` = the same 128 bits; ``Parent=<16 hex>``;
             ``Sampled=0|1|?``

Nothing here raises on bad input: parsers return ``None`` and callers treat that as "no context".
"""

from __future__ import annotations

import random
import time
from typing import Optional

MAX_UINT64 = (1 << 64) - 1
LOW64_MASK = MAX_UINT64
MASK_63 = 0x7FFF_FFFF_FFFF_FFFF  # Datadog's X-Ray integration keeps 63 bits of an X-Ray id

# Sampling priorities (Datadog).
USER_REJECT = -1
AUTO_REJECT = 0
AUTO_KEEP = 1
USER_KEEP = 2

_HEX = frozenset("0123456789abcdefABCDEF")
_LOWER_HEX_BYTES = b"0123456789abcdef"


# ---------------------------------------------------------------- Datadog


def parse_dd_id(value: object) -> Optional[int]:
    """A Datadog decimal id (trace or parent): 1 .. 2**64-1, digits only, else None."""
    # isdigit() alone admits non-ASCII digits ("٣", "²"); with isascii() it is exactly 0-9.
    if type(value) is str and 0 < len(value) <= 20 and value.isascii() and value.isdigit():
        number = int(value)
        if 0 < number <= MAX_UINT64:
            return number
    return None


def parse_tid(value: object) -> Optional[int]:
    """``_dd.p.tid``: exactly 16 lowercase hex digits (as ddtrace requires), else None."""
    # Deleting the lowercase hex digits must leave nothing: bytes.translate does it in one C pass.
    if (
        type(value) is str
        and len(value) == 16
        and value.isascii()
        and not value.encode().translate(None, _LOWER_HEX_BYTES)
    ):
        return int(value, 16)
    return None


def format_tid(trace_id: int) -> Optional[str]:
    """The ``_dd.p.tid`` value for a 128-bit trace id, or None when the high half is zero."""
    high = trace_id >> 64
    return "%016x" % high if high else None


def dd_trace_id(trace_id: int) -> int:
    """The Datadog trace id (low 64 bits) of an OTel trace id."""
    return trace_id & LOW64_MASK


def trace_id_from_dd(low: int, tid: Optional[int] = None) -> int:
    """The OTel 128-bit trace id from Datadog's low 64 bits and ``_dd.p.tid``."""
    return ((tid or 0) << 64) | (low & LOW64_MASK)


def format_dd_id(number: int) -> str:
    """A Datadog header id: the low 64 bits in decimal."""
    return str(number & LOW64_MASK)


# ---------------------------------------------------------------- sampling


TRACE_FLAG_SAMPLED = 0x01  # W3C trace-flags bit 0


def sampled_from_priority(priority: int) -> bool:
    """Datadog keeps a trace when its priority is above zero."""
    return priority > 0


def priority_from_sampled(sampled: bool) -> int:
    """The automatic Datadog priority for a bare sampled/unsampled decision."""
    return AUTO_KEEP if sampled else AUTO_REJECT


def trace_flags_from_priority(priority: int) -> int:
    """W3C/OTel trace flags for a Datadog priority."""
    return TRACE_FLAG_SAMPLED if priority > 0 else 0


def priority_from_trace_flags(flags: int) -> int:
    return AUTO_KEEP if flags & TRACE_FLAG_SAMPLED else AUTO_REJECT


def parse_priority(value: object) -> Optional[int]:
    """``x-datadog-sampling-priority`` / ``s:``: a small signed integer, else None."""
    if type(value) is not str:
        return None
    known = PRIORITIES.get(value)
    if known is not None:
        return known
    value = value.strip(" \t")
    digits = value[1:] if value[:1] == "-" else value
    if not 0 < len(digits) <= 3 or not (digits.isascii() and digits.isdigit()):
        return None
    return int(value)


# The values every tracer writes; a dict lookup, before the general parse, on the hot paths.
PRIORITIES = {"-1": USER_REJECT, "0": AUTO_REJECT, "1": AUTO_KEEP, "2": USER_KEEP}


# ---------------------------------------------------------------- X-Ray


def format_xray_trace_id(trace_id: int) -> str:
    """``1-<8 hex>-<24 hex>``: the X-Ray form of a 128-bit trace id."""
    h = "%032x" % trace_id
    return "1-%s-%s" % (h[:8], h[8:])


def parse_xray_trace_id(value: object) -> Optional[int]:
    """The 128-bit trace id of an X-Ray root ``1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy``, else None."""
    if type(value) is not str or len(value) != 35 or value[:2] != "1-" or value[10] != "-":
        return None
    digits = value[2:10] + value[11:]
    if not _HEX.issuperset(digits):
        return None
    number = int(digits, 16)
    return number or None


def format_span_id_hex(span_id: int) -> str:
    return "%016x" % span_id


def parse_hex_span_id(value: object) -> Optional[int]:
    """A 16-hex-digit span id (X-Ray ``Parent``, W3C parent-id), non-zero, else None."""
    if type(value) is not str or len(value) != 16 or not _HEX.issuperset(value):
        return None
    return int(value, 16) or None


def dd_trace_id_from_xray_root(trace_id: int) -> int:
    """The Datadog trace id that ``datadog_lambda`` derives from an X-Ray root (63 bits)."""
    return trace_id & MASK_63


def xray_sampled_to_priority(sampled: Optional[bool]) -> int:
    """X-Ray ``Sampled`` to a Datadog priority, as datadog_lambda intends: 2 kept, -1 dropped."""
    return USER_KEEP if sampled is not False else USER_REJECT


def parse_xray_sampled(value: object) -> Optional[bool]:
    """X-Ray ``Sampled``: ``1`` True, ``0`` False, anything else (``?``, absent) None = undecided."""
    if value == "1":
        return True
    if value == "0":
        return False
    return None


def format_xray_sampled(sampled: bool) -> str:
    return "1" if sampled else "0"


def xray_sampled_from_priority(priority: int) -> str:
    """X-Ray ``Sampled`` for a Datadog priority."""
    return "1" if priority > 0 else "0"


# ---------------------------------------------------------------- generation


def generate_span_id() -> int:
    span_id = random.getrandbits(64)
    while span_id == 0:
        span_id = random.getrandbits(64)
    return span_id


def generate_trace_id() -> int:
    """``<32-bit epoch seconds><32 zero bits><64 random bits>``, bit 63 of the low half zero.

    The top 32 bits make it a valid X-Ray root, the low 64 bits a full Datadog id; bit 63 stays
    zero so the id also survives Datadog's X-Ray integration, which masks X-Ray ids to 63 bits.
    (``random`` reseeds itself in a forked child, so ids do not repeat across forks.)
    """
    low = random.getrandbits(63)
    while low == 0:
        low = random.getrandbits(63)
    return ((int(time.time()) & 0xFFFF_FFFF) << 96) | low


def __getattr__(name: str) -> type:
    # The SDK's IdGenerator base class is imported only when the generator is asked for, so that
    # importing the ID model (and the propagators) does not pull in opentelemetry.sdk.trace.
    if name == "DatadogXRayIdGenerator":
        from opentelemetry.sdk.trace.id_generator import IdGenerator

        class DatadogXRayIdGenerator(IdGenerator):
            """An OTel ``IdGenerator`` whose trace ids are valid in OTel, Datadog and X-Ray."""

            def generate_span_id(self) -> int:
                return generate_span_id()

            def generate_trace_id(self) -> int:
                return generate_trace_id()

        globals()[name] = DatadogXRayIdGenerator
        return DatadogXRayIdGenerator
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
