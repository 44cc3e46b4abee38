"""``inject(target, kind)``: put the current trace context into one outgoing AWS message.

``target`` is the boto3 request parameters of one message (``send_message`` kwargs, one
``SendMessageBatch`` / ``PublishBatch`` / ``PutEvents`` / ``PutRecords`` entry, ``invoke`` or
``start_execution`` kwargs), a paho-mqtt ``Properties`` object, or a JSON payload dict (MQTT).

Never lose or break the user's message: when a service limit, an existing ``_datadog``, or a
payload that is not a JSON object forbids it, nothing is changed and False is returned (logged
once per reason at debug level, counted in ``SKIPPED``). Existing JSON text is kept byte for
byte: ``_datadog`` is spliced in before the closing brace instead of re-serializing the payload.
Nested user dicts (``MessageAttributes``) are copied, never mutated, so a dict the caller reuses
for many sends does not accumulate a stale context.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Tuple

from opentelemetry.trace import SpanContext, get_current_span

from . import config
from .carriers import eventbridge
from .propagators.baggage import HEADER as BAGGAGE_HEADER
from .propagators.composite import DatadogCompositePropagator

logger = logging.getLogger("otel_dd_lambda.injection")

DATADOG_KEY = "_datadog"
MAX_MESSAGE_ATTRIBUTES = 10  # SQS and SNS
MAX_SQS_BYTES = 256 * 1024
MAX_SNS_BYTES = 256 * 1024
MAX_EVENTBRIDGE_ENTRY_BYTES = 256 * 1024  # exclusive: an entry (and a request) must be smaller
MAX_KINESIS_BYTES = 1024 * 1024
MAX_CLIENT_CONTEXT_BYTES = 3583
MAX_SFN_INPUT_BYTES = 256 * 1024

SKIPPED: Counter = Counter()  # reason -> injections skipped in this process
_logged: set = set()  # reasons already logged once
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
_ENV_NAMES = ("DD_TRACE_PROPAGATION_STYLE_INJECT", "DD_TRACE_PROPAGATION_STYLE", "OTEL_PROPAGATORS")
_env_key = config.env_fingerprint(_ENV_NAMES)


def _skip(kind: str, reason: str) -> bool:
    SKIPPED[reason] += 1
    if reason not in _logged:
        _logged.add(reason)
        logger.debug("trace context not injected into %s: %s", kind, reason)
    return False


# ---------------------------------------------------------------- headers, cached per config

_key: Optional[Tuple[Any, ...]] = None
_all: Optional[DatadogCompositePropagator] = None
_message: Optional[DatadogCompositePropagator] = None


def _propagators() -> Tuple[DatadogCompositePropagator, DatadogCompositePropagator]:
    """(every configured style, the styles that go in ``_datadog``: Datadog and W3C)."""
    global _key, _all, _message
    key = _env_key()
    if key != _key or _all is None or _message is None:
        styles = config.propagation_styles("inject")
        _all = DatadogCompositePropagator(extract_styles=(), inject_styles=styles)
        # X-Ray travels in AWS's own AWSTraceHeader; in _datadog it would only cost bytes.
        _message = DatadogCompositePropagator(
            extract_styles=(), inject_styles=[s for s in styles if s in (config.DATADOG, config.TRACECONTEXT)]
        )
        _key = key
    return _all, _message


def _span_context(context: Any) -> Optional[SpanContext]:
    if type(context) is SpanContext:
        return context if context.is_valid else None
    span_context = get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def get_trace_headers(context: Any = None) -> Dict[str, str]:
    """Every configured style's headers for the current (or given) context; {} without a span.
    The context's OTel baggage goes in ``baggage`` (with or without a span, as ddtrace)."""
    try:
        every_style = _propagators()[0]
        span_context = _span_context(context)
        headers = every_style.headers(span_context) if span_context is not None else {}
        if type(context) is not SpanContext:
            value = every_style.baggage_header(context)
            if value is not None:
                headers[BAGGAGE_HEADER] = value
        return headers
    except Exception:
        logger.debug("get_trace_headers failed", exc_info=True)
        return {}


# The last span's headers: a producer sends many messages (a batch, a loop) from one span.
_last: Tuple[Any, ...] = (None, None, None, None)


def message_headers(span_context: SpanContext) -> Tuple[Dict[str, str], str]:
    """``(headers, _datadog JSON)`` for ``span_context``; do not mutate the returned dict."""
    global _last
    message = _propagators()[1]
    cached_sc, cached_propagator, headers, text = _last
    if cached_propagator is message and (
        cached_sc is span_context
        or (
            cached_sc[0] == span_context[0]
            and cached_sc[1] == span_context[1]
            and cached_sc.trace_flags == span_context.trace_flags
            and cached_sc.trace_state is span_context.trace_state
        )
    ):
        return headers, text
    headers = message.headers(span_context)
    text = _dumps(headers)
    _last = (span_context, message, headers, text)  # holds the SpanContext, so `is` stays sound
    return headers, text


def datadog_json(span_context: SpanContext) -> str:
    """The ``_datadog`` JSON (compact, ASCII) for ``span_context``."""
    return message_headers(span_context)[1]


# ---------------------------------------------------------------- size accounting


def _utf8_len(value: Any) -> int:
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    return len(str(value)) if value is not None else 0


def _attributes_bytes(attributes: Dict[str, Any], value_keys: Tuple[str, ...]) -> int:
    """Message attribute size as SQS/SNS count it: name + data type + value."""
    total = 0
    for name, attr in attributes.items():
        total += _utf8_len(name)
        if type(attr) is dict:
            total += _utf8_len(attr.get("DataType"))
            for key in value_keys:
                if key in attr:
                    total += _utf8_len(attr[key])
    return total


def sqs_message_bytes(target: Dict[str, Any]) -> int:
    attrs = target.get("MessageAttributes")
    size = _utf8_len(target.get("MessageBody"))
    return size + (_attributes_bytes(attrs, ("StringValue", "BinaryValue")) if type(attrs) is dict else 0)


def eventbridge_entry_bytes(entry: Dict[str, Any]) -> int:
    """A PutEvents entry's size as EventBridge counts it ("Calculating Amazon EventBridge PutEvents
    event entry size"): Time 14 bytes when given, then the UTF-8 bytes of Source, DetailType,
    Detail and each Resources string."""
    size = 14 if entry.get("Time") is not None else 0
    size += _utf8_len(entry.get("Source")) + _utf8_len(entry.get("DetailType")) + _utf8_len(entry.get("Detail"))
    resources = entry.get("Resources")
    if isinstance(resources, (list, tuple)):
        size += sum(_utf8_len(resource) for resource in resources)
    return size


def sns_message_bytes(target: Dict[str, Any]) -> int:
    attrs = target.get("MessageAttributes")
    size = _utf8_len(target.get("Message")) + _utf8_len(target.get("Subject"))
    return size + (_attributes_bytes(attrs, ("StringValue", "BinaryValue")) if type(attrs) is dict else 0)


# ---------------------------------------------------------------- JSON splicing


def splice_json(text: Any, value: str) -> Any:
    """``text`` (a JSON object as str or UTF-8 bytes) with ``"_datadog": value`` added before its
    closing brace, everything else byte for byte; None when ``text`` is not a JSON object, is
    bytes in another encoding than UTF-8 (or has a BOM), or already has a ``_datadog`` key."""
    is_bytes = isinstance(text, (bytes, bytearray))
    if not is_bytes and type(text) is not str:
        return None
    try:
        # Strict UTF-8 first: json.loads(bytes) would also accept UTF-16/32, which UTF-8 bytes
        # spliced in would corrupt. A str with a BOM is rejected by json.loads (RFC 8259 §8.1).
        raw = bytes(text).decode("utf-8") if is_bytes else text
        obj = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    if type(obj) is not dict or DATADOG_KEY in obj:
        return None
    end = raw.rstrip().rfind("}")
    if end < 0:
        return None
    member = '"%s":%s' % (DATADOG_KEY, value)
    spliced = raw[:end] + ("," + member if obj else member) + raw[end:]
    return spliced.encode("utf-8") if is_bytes else spliced


_WHITESPACE = json.decoder.WHITESPACE.match  # type: ignore[attr-defined]
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]
_decoder = json.JSONDecoder()


def _members(doc: str) -> Tuple[int, Dict[str, List[Tuple[int, int]]]]:
    """For ``doc``, already known to be one JSON object: (index of its closing brace,
    key -> [(start, end) of each value's text]), so values can be edited in place."""
    spans: Dict[str, List[Tuple[int, int]]] = {}
    i = _WHITESPACE(doc, 0).end() + 1  # past "{"
    i = _WHITESPACE(doc, i).end()
    if doc[i] == "}":
        return i, spans
    while True:
        key, i = _scanstring(doc, i + 1, True)  # doc[i] is the key's opening quote
        i = _WHITESPACE(doc, _WHITESPACE(doc, i).end() + 1).end()  # past ":"
        end = _decoder.raw_decode(doc, i)[1]
        spans.setdefault(key, []).append((i, end))
        i = _WHITESPACE(doc, end).end()
        if doc[i] == "}":
            return i, spans
        i = _WHITESPACE(doc, i + 1).end()  # past ","


def add_to_client_context(doc: str, headers: Dict[str, str]) -> Tuple[Optional[str], str]:
    """``doc`` (a ClientContext JSON text) with ``headers`` added to its ``custom`` object, the
    rest kept character for character (re-encoding could change values: 1e400 -> Infinity);
    (None, reason) when it is not a JSON object, ``custom`` is not one, or it has trace headers."""
    try:
        if type(json.loads(doc)) is not dict:
            return None, "ClientContext is not a JSON object"
        close, spans = _members(doc)
    except (ValueError, TypeError, RecursionError, IndexError):
        return None, "ClientContext is not a JSON object"
    members = ",".join("%s:%s" % (_dumps(name), _dumps(value)) for name, value in headers.items())
    custom_spans = spans.get("custom")
    if custom_spans is None:
        member = '"custom":{%s}' % members
        return doc[:close] + ("," + member if spans else member) + doc[close:], ""
    if len(custom_spans) > 1:
        return None, "ClientContext has several custom keys"  # which one wins is the reader's choice
    start, end = custom_spans[0]
    custom = json.loads(doc[start:end])
    if type(custom) is not dict:
        return None, "ClientContext.custom is not an object"
    if DATADOG_KEY in custom or any(name in custom for name in headers):
        return None, "ClientContext already has trace headers"
    end -= 1  # the custom object's closing brace
    return doc[:end] + ("," + members if custom else members) + doc[end:], ""


# ---------------------------------------------------------------- per target


def _with_attribute(target: Dict[str, Any], kind: str, attribute: Dict[str, Any], size: int, limit: int) -> bool:
    attrs = target.get("MessageAttributes")
    if attrs is None:
        attrs = {}
    elif type(attrs) is not dict:
        return _skip(kind, "MessageAttributes is not a dict")
    if DATADOG_KEY in attrs:
        return _skip(kind, "message already has _datadog")
    if len(attrs) >= MAX_MESSAGE_ATTRIBUTES:
        return _skip(kind, "message already has %d attributes" % MAX_MESSAGE_ATTRIBUTES)
    added = len(DATADOG_KEY) + len(attribute["DataType"]) + size
    current = sqs_message_bytes(target) if kind == "sqs" else sns_message_bytes(target)
    if current + added > limit:
        return _skip(kind, "message would exceed %d bytes" % limit)
    new_attrs = dict(attrs)  # the caller's dict stays as it was
    new_attrs[DATADOG_KEY] = attribute
    target["MessageAttributes"] = new_attrs
    return True


def _sqs(target: Any, span_context: SpanContext) -> bool:
    if type(target) is not dict:
        return _skip("sqs", "target is not a dict")
    value = datadog_json(span_context)
    return _with_attribute(target, "sqs", {"DataType": "String", "StringValue": value}, len(value), MAX_SQS_BYTES)


def _sns(target: Any, span_context: SpanContext) -> bool:
    if type(target) is not dict:
        return _skip("sns", "target is not a dict")
    value = datadog_json(span_context).encode("ascii")
    # Binary: SNS filter policies only look at String attributes, so subscriptions keep working.
    return _with_attribute(target, "sns", {"DataType": "Binary", "BinaryValue": value}, len(value), MAX_SNS_BYTES)


def _spliced_field(target: Any, kind: str, field: str, span_context: SpanContext, limit: int, other: int = 0,
                   default: Any = None, value: Optional[str] = None) -> bool:
    """``target[field]`` with ``"_datadog": value`` spliced in (default: ``datadog_json``)."""
    if type(target) is not dict:
        return _skip(kind, "target is not a dict")
    current = target.get(field, default)
    if current is None:
        return _skip(kind, "%s is missing" % field)
    spliced = splice_json(current, value if value is not None else datadog_json(span_context))
    if spliced is None:
        return _skip(kind, "%s is not a JSON object (or already has _datadog)" % field)
    if _utf8_len(spliced) + other >= limit:
        return _skip(kind, "%s would reach %d bytes" % (field, limit))
    target[field] = spliced
    return True


def eventbridge_datadog_json(span_context: SpanContext, bus_name: Any, now_ms: int) -> str:
    """``datadog_json`` plus what Datadog's Go/Java/.NET/JS tracers add for EventBridge: when the
    event was put (``x-datadog-start-time``, epoch ms as text) and on which bus
    (``x-datadog-resource-name``, the ``EventBusName`` as given, when given). The consumer's
    inferred span starts then and is named after the bus."""
    extra = ',"%s":"%d"' % (eventbridge.START_TIME, now_ms)
    if type(bus_name) is str and bus_name:
        extra += ',"%s":%s' % (eventbridge.RESOURCE_NAME, _dumps(bus_name))
    text = datadog_json(span_context)
    return text[:-1] + extra + "}"  # the cached object, its closing brace moved after the extra members


def _eventbridge(target: Any, span_context: SpanContext) -> bool:
    if type(target) is not dict:
        return _skip("eventbridge", "target is not a dict")
    other = eventbridge_entry_bytes(target) - _utf8_len(target.get("Detail"))
    value = eventbridge_datadog_json(span_context, target.get("EventBusName"), time.time_ns() // 1_000_000)
    return _spliced_field(target, "eventbridge", "Detail", span_context, MAX_EVENTBRIDGE_ENTRY_BYTES, other,
                          value=value)


def _kinesis(target: Any, span_context: SpanContext) -> bool:
    other = _utf8_len(target.get("PartitionKey")) if type(target) is dict else 0
    return _spliced_field(target, "kinesis", "Data", span_context, MAX_KINESIS_BYTES + 1, other)


def _stepfunctions(target: Any, span_context: SpanContext) -> bool:
    # An execution without input starts with "{}", so adding one is the same as adding a key.
    return _spliced_field(target, "stepfunctions", "input", span_context, MAX_SFN_INPUT_BYTES + 1, 0, "{}")


def _lambda(target: Any, span_context: SpanContext) -> bool:
    if type(target) is not dict:
        return _skip("lambda", "target is not a dict")
    raw = target.get("ClientContext")
    headers = message_headers(span_context)[0]
    doc: Optional[str]
    if raw is None:
        doc, reason = add_to_client_context("{}", headers)
    else:
        if type(raw) is not str:
            return _skip("lambda", "ClientContext is not a string")  # botocore rejects it: keep that
        if len(raw) > MAX_CLIENT_CONTEXT_BYTES:
            return _skip("lambda", "ClientContext would exceed %d bytes" % MAX_CLIENT_CONTEXT_BYTES)
        try:
            original = base64.b64decode(raw, validate=True).decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return _skip("lambda", "ClientContext is not base64 UTF-8 JSON")
        doc, reason = add_to_client_context(original, headers)
    if doc is None:
        return _skip("lambda", reason)
    encoded = base64.b64encode(doc.encode("utf-8")).decode("ascii")
    if len(encoded) > MAX_CLIENT_CONTEXT_BYTES:  # the limit is on the base64 text
        return _skip("lambda", "ClientContext would exceed %d bytes" % MAX_CLIENT_CONTEXT_BYTES)
    target["ClientContext"] = encoded
    return True


def _mqtt(target: Any, span_context: SpanContext) -> bool:
    if type(target) is dict:  # a JSON payload that will be serialized by the caller
        if DATADOG_KEY in target:
            return _skip("mqtt", "payload already has _datadog")
        target[DATADOG_KEY] = dict(message_headers(span_context)[0])
        return True
    if hasattr(target, "UserProperty") or type(target).__name__ == "Properties":
        try:
            existing = getattr(target, "UserProperty", None) or []
            if any(type(item) is tuple and item and item[0] == DATADOG_KEY for item in existing):
                return _skip("mqtt", "properties already have _datadog")
            target.UserProperty = (DATADOG_KEY, datadog_json(span_context))  # paho appends
            return True
        except Exception:
            return _skip("mqtt", "properties do not accept user properties (MQTT v5 PUBLISH only)")
    return _skip("mqtt", "target is neither paho Properties nor a dict payload")


_INJECTORS: Dict[str, Callable[[Any, SpanContext], bool]] = {
    "sqs": _sqs,
    "sns": _sns,
    "kinesis": _kinesis,
    "eventbridge": _eventbridge,
    "lambda": _lambda,
    "stepfunctions": _stepfunctions,
    "mqtt": _mqtt,
}
KINDS = tuple(_INJECTORS)


def inject(target: Any, kind: str, context: Any = None) -> bool:
    """Add the current (or given) trace context to one outgoing message; True when added.

    ``context``: an OTel ``Context``, a ``SpanContext``, or None for the active span.
    """
    try:
        injector = _INJECTORS.get(kind)
        if injector is None:
            return _skip(str(kind), "unknown kind")
        span_context = _span_context(context)
        if span_context is None:
            return False  # no trace to continue: nothing to log
        return injector(target, span_context)
    except Exception:  # tracing never breaks the user's call
        logger.debug("injection into %s failed", kind, exc_info=True)
        return False
