"""One row per Lambda trigger: where its trace context is, its records, its event time, its tags.

``detect`` names the trigger; ``row_of(subtype or trigger)`` is its row. Extraction, trigger tags,
event time and the inferred span all read the row, so a new trigger is one carrier module plus
one row here. API Gateway has a row per subtype: the authorizer's ``_datadog`` lives in a
different place in an HTTP API event than in a REST or websocket one.

The rows of HTTP triggers are built at import. Every other row is built, with its carrier module,
by the first event of its trigger (``_LAZY_ROWS``): a function serves one kind of trigger, and each
module it never uses costs cold-start time and memory (finding, loading, code objects). A built
row holds the module's own functions, so reading a record costs what it did with eager rows.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from . import authorizer, detect, durable, http, stepfunctions, tags
from .common import attribute_key_carrier, datadog_member

# How an event-time field counts: epoch milliseconds, epoch seconds, ISO 8601 text, or epoch ns
# (a reader that has converted already).
MS, SECONDS, ISO, NS = "ms", "s", "iso", "ns"

if TYPE_CHECKING:  # annotations only: subscripting typing generics at import costs cold-start time
    Reader = Callable[[Dict[str, Any]], Any]


class Trigger:
    """A trigger's row (read-only). ``carriers`` read the event and are tried in order, the first
    context wins; ``record_carrier`` reads each record of a batch (then ``message_id`` names the
    record's link). ``record_key`` names a record's raw carrier when that alone decides it (a
    hashable value, or None) and ``key_carrier`` reads such a key: records that repeat a key are
    resolved once per batch. ``time`` reads the event time from the first record (``records``) or the
    event, counted in ``time_unit``. ``arn`` builds the event source ARN when the event names
    none; ``http`` adds the ``http.*`` tags; ``tagged`` is False where Datadog tags nothing."""

    __slots__ = ("name", "subtype", "carriers", "record_carrier", "message_id", "record_key", "key_carrier", "records",
                 "time", "time_unit", "arn", "http", "tagged")

    def __init__(
        self,
        name: str,
        subtype: Optional[str] = None,
        carriers: Tuple[Reader, ...] = (),
        record_carrier: Optional[Reader] = None,
        message_id: Optional[Reader] = None,
        record_key: Optional[Reader] = None,
        key_carrier: Optional[Callable[[Any], Any]] = None,
        records: bool = False,
        time: Optional[Reader] = None,
        time_unit: str = MS,
        arn: Optional[tags.ArnRule] = None,
        http: bool = False,
        tagged: bool = True,
    ) -> None:
        self.name = name
        self.subtype = subtype
        self.carriers = carriers
        self.record_carrier = record_carrier
        self.message_id = message_id
        self.record_key = record_key
        self.key_carrier = key_carrier
        self.records = records or record_carrier is not None
        self.time = time
        self.time_unit = time_unit
        self.arn = arn
        self.http = http
        self.tagged = tagged

    def event_time_ns(self, event: Any) -> Optional[int]:
        """When the managed service received ``event``, in ns since the epoch, else None."""
        if self.time is None or type(event) is not dict:
            return None
        try:
            source = event["Records"][0] if self.records else event
            return epoch_ns(self.time(source), self.time_unit)
        except Exception:  # a malformed event has no time
            return None

    def __repr__(self) -> str:
        return "Trigger(%r, %r)" % (self.name, self.subtype)


def epoch_ns(value: Any, unit: str) -> Optional[int]:
    """A time field (``unit``: MS, SECONDS, ISO or NS) as ns since the epoch; None when unusable."""
    if unit == NS:
        return value if type(value) is int and value > 0 else None
    if unit == ISO:
        if type(value) is not str or not 19 <= len(value) <= 40:
            return None
        try:
            moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)  # AWS writes UTC
        return int(moment.timestamp() * 1_000_000) * 1000
    if type(value) is str and 0 < len(value) < 32:
        try:  # digits stay an int: a millisecond count converts exactly
            value = int(value) if value.isdigit() else float(value)
        except ValueError:
            return None
    if type(value) not in (int, float) or not 0 < value < 1e15:
        return None
    return int(value * (1_000_000 if unit == MS else 1_000_000_000))


def _api_gateway(subtype: str, authorizer_headers: Reader) -> Trigger:
    return Trigger(detect.API_GATEWAY, subtype, (authorizer_headers, http.headers), time=http.request_time_ms,
                   arn=tags.api_gateway_arn, http=True)


_EAGER_ROWS: Tuple[Trigger, ...] = (
    Trigger(detect.CLOUDFRONT, records=True, arn=tags.cloudfront_arn),
    Trigger(detect.CLOUDWATCH_EVENTS, arn=tags.first_resource_arn),
    Trigger(detect.CLOUDWATCH_LOGS, arn=tags.log_group_arn),
    Trigger(detect.STATES, carriers=(stepfunctions.event_span_context,), arn=tags.state_machine_arn),
    _api_gateway(detect.REST, authorizer.rest_headers),
    _api_gateway(detect.WEBSOCKET, authorizer.rest_headers),
    _api_gateway(detect.HTTP_API, authorizer.http_api_headers),
    Trigger(detect.FUNCTION_URL, carriers=(http.headers,), time=http.request_time_ms, arn=tags.function_url_arn,
            http=True),
    Trigger(detect.ALB, carriers=(http.headers,), arn=tags.alb_target_group_arn, http=True),
)


def _sqs() -> Trigger:
    from . import sqs

    return Trigger(detect.SQS, record_carrier=sqs.record_carrier, message_id=sqs.message_id,
                   record_key=sqs.attribute_key, key_carrier=attribute_key_carrier, time=sqs.sent_timestamp_ms)


def _sns() -> Trigger:
    from . import sns

    return Trigger(detect.SNS, record_carrier=sns.record_carrier, message_id=sns.message_id,
                   record_key=sns.attribute_key, key_carrier=attribute_key_carrier, time=sns.timestamp,
                   time_unit=ISO, arn=tags.sns_topic_arn)


def _kinesis() -> Trigger:
    from . import kinesis

    return Trigger(detect.KINESIS, record_carrier=kinesis.record_carrier, message_id=kinesis.sequence_number,
                   time=kinesis.arrival_seconds, time_unit=SECONDS)


def _dynamodb() -> Trigger:
    from . import notrace

    return Trigger(detect.DYNAMODB, records=True, time=notrace.dynamodb_created_seconds, time_unit=SECONDS)


def _s3() -> Trigger:
    from . import notrace

    return Trigger(detect.S3, records=True, time=notrace.s3_event_time, time_unit=ISO, arn=tags.s3_bucket_arn)


def _eventbridge() -> Trigger:
    from . import eventbridge

    def time_ns(event: Dict[str, Any]) -> Optional[int]:
        """The producer's ``x-datadog-start-time`` (ms) when it wrote one, else the event's ``time``
        (whole seconds), as Datadog's Lambda extension starts the inferred span."""
        start = epoch_ns(eventbridge.start_time_ms(event), MS)
        return start if start is not None else epoch_ns(eventbridge.event_time(event), ISO)

    return Trigger(detect.EVENTBRIDGE, carriers=(eventbridge.detail_carrier,), time=time_ns, time_unit=NS)


def _appsync() -> Trigger:
    from . import appsync

    return Trigger(detect.APPSYNC, carriers=(appsync.headers,), tagged=False)


def _mqtt() -> Trigger:
    from . import mqtt  # its OTel Getter/Setter classes cost ~0.8 M instructions to build

    return Trigger(detect.MQTT, carriers=(mqtt.message_carrier,), tagged=False)


# The rows built by the first event of their trigger, each with its carrier module.
_LAZY_ROWS: Dict[str, Callable[[], Trigger]] = {
    detect.SQS: _sqs,
    detect.SNS: _sns,
    detect.KINESIS: _kinesis,
    detect.DYNAMODB: _dynamodb,
    detect.S3: _s3,
    detect.EVENTBRIDGE: _eventbridge,
    detect.APPSYNC: _appsync,
    detect.MQTT: _mqtt,
}

# An event of no known trigger: a durable function's (its latest trace checkpoint), an AWS IoT
# rule (MQTT) or any producer that put ``_datadog`` at the top of the payload.
UNKNOWN = Trigger("", carriers=(durable.checkpoint_carrier, datadog_member), tagged=False)


if TYPE_CHECKING:
    _RowDict = Dict[Optional[str], Trigger]
else:
    _RowDict = dict  # not typing's Dict[...]: subscripting it at import costs cold-start time


class _Rows(_RowDict):
    """The rows by ``subtype or trigger``; a lazy row is built on its first lookup. Concurrent
    first lookups may both build it: ``setdefault`` keeps one, so every caller gets the same row."""

    def __missing__(self, key: Optional[str]) -> Trigger:
        build = _LAZY_ROWS[key]  # type: ignore[index]  # (KeyError for a name of no trigger, as a dict)
        return self.setdefault(key, build())


_BY_KEY = _Rows({row.subtype or row.name: row for row in _EAGER_ROWS})
_BY_KEY[None] = UNKNOWN
# The row of ``detect.detect``'s ``(trigger, subtype)``: ``row_of(subtype or trigger)`` (``UNKNOWN``
# for None). The dict's own lookup: no Python frame on the per-event path once the row is built.
row_of: Callable[[Optional[str]], Trigger] = _BY_KEY.__getitem__


def all_rows() -> Tuple[Trigger, ...]:
    """Every trigger's row (building the lazy ones), ``UNKNOWN`` aside."""
    return _EAGER_ROWS + tuple(row_of(key) for key in _LAZY_ROWS)
