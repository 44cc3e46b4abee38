"""Merging with AWS X-Ray (``DD_MERGE_XRAY_TRACES``, DESIGN §7).

Two halves:

- ``xray_parent(header)``: Lambda's own X-Ray segment (``_X_AMZN_TRACE_ID``) as the invocation
  span's parent, for events that brought no context of their own.
- ``send_metadata_subsegment(...)``: one UDP datagram to the X-Ray daemon
  (``AWS_XRAY_DAEMON_ADDRESS``) holding a ``datadog-metadata`` subsegment with the Datadog ids,
  so the two backends can join their traces. Never sent for an unsampled X-Ray trace, never
  over 64 KiB, never blocking (a non-blocking datagram socket), never raising.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Optional, Tuple

from opentelemetry.trace import SpanContext

from .. import config, ids
from ..propagators import ddstate, xray

logger = logging.getLogger(__name__)

HEADER_LINE = '{"format": "json", "version": 1}\n'
SUBSEGMENT_NAME = "datadog-metadata"
MAX_DATAGRAM = 64 * 1024

_socket: Optional[socket.socket] = None
_socket_address: Optional[Tuple[str, int]] = None


def parse_daemon_address(value: Optional[str]) -> Optional[Tuple[str, int]]:
    """``host:port`` or ``tcp:h:p udp:h:p`` (the UDP one is used), else None."""
    if not value:
        return None
    udp = None
    for part in value.split():
        if part.startswith("udp:"):
            udp = part[4:]
        elif part.startswith("tcp:"):
            continue
        elif udp is None:
            udp = part
    if not udp:
        return None
    host, sep, port = udp.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def xray_parent(header: Optional[str] = None) -> Optional[SpanContext]:
    """The span context of Lambda's X-Ray segment, or None (absent, malformed or unsampled)."""
    return xray.lambda_span_context(header if header is not None else config.lambda_trace_header())


def build_datagram(
    header: Optional[str],
    dd_trace_id: int,
    dd_parent_id: int,
    sampling_priority: int,
    start_time: Optional[float] = None,
    end_time: Optional[float] = None,
) -> Optional[bytes]:
    """The daemon datagram (header line + subsegment JSON), or None when it must not be sent."""
    parsed = xray.parse_header(header)
    if parsed is None:
        return None
    if parsed.sampled is False:
        return None  # the X-Ray trace is sampled out: nothing would keep the subsegment
    import json

    now = time.time()
    document = {
        "id": "%016x" % ids.generate_span_id(),
        "trace_id": ids.format_xray_trace_id(parsed.trace_id),
        "parent_id": ids.format_span_id_hex(parsed.parent_id),
        "name": SUBSEGMENT_NAME,
        "start_time": now if start_time is None else start_time,
        "end_time": now if end_time is None else end_time,
        "type": "subsegment",
        "metadata": {
            "datadog": {
                "trace": {
                    "trace-id": str(dd_trace_id),
                    "parent-id": str(dd_parent_id),
                    "sampling-priority": str(sampling_priority),
                }
            }
        },
    }
    data = (HEADER_LINE + json.dumps(document, separators=(", ", ": "))).encode("utf-8")
    if len(data) > MAX_DATAGRAM:
        logger.debug("X-Ray subsegment of %d bytes not sent (over 64 KiB)", len(data))
        return None
    return data


def send_metadata_subsegment(
    span_context: Optional[SpanContext],
    header: Optional[str] = None,
    address: Optional[str] = None,
) -> bool:
    """Send the ``datadog-metadata`` subsegment for the trace of ``span_context`` (the
    invocation's parent). True when a datagram left; never raises, never blocks."""
    global _socket, _socket_address
    try:
        target = parse_daemon_address(address if address is not None else config.xray_daemon_address())
        if target is None or span_context is None or not span_context.is_valid:
            return False
        sampled = bool(span_context.trace_flags & 1)
        state = ddstate.parse_dd_member(span_context.trace_state.get(ddstate.MEMBER_KEY))
        data = build_datagram(
            header if header is not None else config.lambda_trace_header(),
            ids.dd_trace_id(span_context.trace_id),
            span_context.span_id,
            ddstate.sampling_priority(sampled, state),
        )
        if data is None:
            return False
        if _socket is None or _socket_address != target:
            if _socket is not None:
                _socket.close()
            family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            _socket, _socket_address = sock, target
        _socket.sendto(data, target)
        return True
    except Exception as error:  # a full buffer or an unresolvable host is not the user's problem
        logger.debug("could not send the X-Ray subsegment: %s", error)
        return False
