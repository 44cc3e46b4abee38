"""Span pointers: links that let Datadog join the span that wrote an S3 object or a DynamoDB item
to the invocation that the write triggered, when no trace context can travel with the data.

A pointer is a span link with trace id 0 and span id 0 (there is no span to point at) whose
attributes are ``link.kind=span-pointer``, ``ptr.kind`` (``aws.s3.object`` / ``aws.dynamodb.item``),
``ptr.dir`` (``d``: the span wrote the data, downstream; ``u``: the span consumed it, upstream) and
``ptr.hash``: the first 32 hex digits of the SHA-256 of the ``|``-joined identity of the data:

- S3 object: ``bucket | key | etag`` (etag without its double quotes);
- DynamoDB item: ``table | key1 | value1 | key2 | value2`` with the key attributes in the order of
  their UTF-8 names; a table with only a partition key has empty second name and value.

Datadog's backend joins a ``d`` pointer and a ``u`` pointer with the same kind and hash.

Everything here is a pure function of its input: bad input gives no pointer (and a debug line),
never an exception.

Where we differ from Datadog's libraries (on purpose, so that producer and consumer join):

- S3 events carry the object key URL-encoded (a space as ``+``). ``datadog_lambda`` hashes that
  text while ddtrace's PutObject side hashes the key itself, so their pointers never meet for such
  keys. We decode the event's key first (``urllib.parse.unquote_plus``).
- DynamoDB binary (``B``) key values: stream records carry them as base64 text, PutItem/DeleteItem
  parameters as bytes. ``datadog_lambda`` hashes the base64 text, ddtrace (and dd-trace-js) hash
  the bytes. We hash the bytes on both sides (a stream record's value is base64-decoded): that is
  what every Datadog tracer's producer side does, so our consumer joins their writes too. For the
  same reason PutItem's ``B`` keys get a pointer (ddtrace gives none: it only accepts text values).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, NamedTuple, Optional, Tuple
from urllib.parse import unquote_plus

logger = logging.getLogger(__name__)

S3_OBJECT = "aws.s3.object"
DYNAMODB_ITEM = "aws.dynamodb.item"
UPSTREAM = "u"  # this span consumed the data (the Lambda triggered by it)
DOWNSTREAM = "d"  # this span wrote the data (the boto3 call)

# Bounds for untrusted events: an S3 notification holds one record, a stream batch at most
# 10,000 (Lambda's maximum batch size); keys and names are far shorter in AWS than these.
MAX_RECORDS = 10_000
MAX_TEXT = 4096


class SpanPointer(NamedTuple):
    kind: str  # S3_OBJECT or DYNAMODB_ITEM
    direction: str  # UPSTREAM or DOWNSTREAM
    hash: str  # 32 lowercase hex digits

    def attributes(self) -> Dict[str, str]:
        """The link attributes Datadog reads (the same four keys ddtrace sends)."""
        return {"link.kind": "span-pointer", "ptr.kind": self.kind, "ptr.dir": self.direction, "ptr.hash": self.hash}


def pointer_hash(*parts: bytes) -> str:
    return hashlib.sha256(b"|".join(parts)).hexdigest()[:32]


def _text(value: Any) -> bool:
    return type(value) is str and len(value) <= MAX_TEXT


# ---------------------------------------------------------------- S3


def s3_object_hash(bucket: Any, key: Any, etag: Any) -> Optional[str]:
    """The hash of an S3 object, or None. ``etag`` may be quoted (as S3's API returns it)."""
    if not (_text(bucket) and _text(key) and _text(etag)):
        return None
    if len(etag) >= 2 and etag[0] == '"' and etag[-1] == '"':
        etag = etag[1:-1]
    if '"' in etag:
        return None
    try:
        # bucket names and etags are ASCII by S3's rules; a key is any UTF-8 text
        return pointer_hash(bucket.encode("ascii"), key.encode("utf-8"), etag.encode("ascii"))
    except UnicodeEncodeError:
        logger.debug("span pointers: S3 bucket, key or etag not encodable")
        return None


def _s3_record_pointer(record: Any) -> Optional[SpanPointer]:
    if type(record) is not dict:
        return None
    name = record.get("eventName")
    if type(name) is not str or not name.startswith("ObjectCreated:"):
        return None  # only a creation has a writer to join
    s3 = record.get("s3")
    bucket = s3.get("bucket") if type(s3) is dict else None
    obj = s3.get("object") if type(s3) is dict else None
    if type(bucket) is not dict or type(obj) is not dict:
        return None
    key: Any = obj.get("key")
    if not _text(key):
        return None
    digest = s3_object_hash(bucket.get("name"), unquote_plus(key), obj.get("eTag"))
    return SpanPointer(S3_OBJECT, UPSTREAM, digest) if digest else None


# ---------------------------------------------------------------- DynamoDB


def _native_value(value: Any) -> Optional[Tuple[str, Any]]:
    """A Python value as boto3's resource API would send it (``TypeSerializer``), or None."""
    try:
        from boto3.dynamodb.types import TypeSerializer
    except ImportError:  # botocore without boto3: only the client API's typed values exist
        return None
    try:
        serialized = TypeSerializer().serialize(value)
    except (TypeError, ValueError, ArithmeticError):
        return None
    if type(serialized) is dict and len(serialized) == 1:
        return next(iter(serialized.items()))
    return None


def _key_value_bytes(value: Any, from_stream: bool) -> Optional[bytes]:
    if type(value) is dict:
        if len(value) != 1:
            return None
        kind, data = next(iter(value.items()))
    else:
        typed = _native_value(value)
        if typed is None:
            return None
        kind, data = typed
    if isinstance(data, (bytes, bytearray)):
        return bytes(data) if kind in ("B", "N") and len(data) <= 2 * MAX_TEXT else None
    if not _text(data):
        return None
    try:
        if kind == "S":
            return data.encode("utf-8")
        if kind == "N":
            return data.encode("ascii")
        if kind == "B":
            if from_stream:
                # a stream record carries the bytes as base64 text: hash the bytes (module doc)
                return base64.b64decode(data, validate=True)
            return data.encode("utf-8")  # botocore sends a text blob as its UTF-8 bytes
    except (UnicodeEncodeError, binascii.Error):
        return None
    return None


def dynamodb_item_hash(table: Any, key: Any, from_stream: bool = False) -> Optional[str]:
    """The hash of the item with primary ``key`` ({name: value}, one or two attributes) in
    ``table``. Values are typed (``{"S": "x"}``) or, from boto3's resource API, Python values."""
    if not _text(table) or type(key) is not dict or len(key) not in (1, 2):
        return None
    parts = [table.encode("utf-8")]
    try:
        items = sorted(((name.encode("utf-8"), value) for name, value in key.items() if _text(name)),
                       key=lambda item: item[0])
    except UnicodeEncodeError:
        return None
    if len(items) != len(key):
        return None
    for name, value in items:
        encoded = _key_value_bytes(value, from_stream)
        if encoded is None:
            return None
        parts += (name, encoded)
    if len(items) == 1:
        parts += (b"", b"")
    return pointer_hash(*parts)


def _stream_table(arn: Any) -> Optional[str]:
    # arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>
    if not _text(arn):
        return None
    fields = arn.split(":", 5)
    if len(fields) != 6 or fields[0] != "arn" or fields[1] != "aws" or fields[2] != "dynamodb":
        return None
    path = fields[5].split("/")
    if len(path) != 4 or path[0] != "table" or path[2] != "stream" or not path[1]:
        return None
    return path[1]


def _dynamodb_record_pointer(record: Any) -> Optional[SpanPointer]:
    if type(record) is not dict:
        return None
    table = _stream_table(record.get("eventSourceARN"))
    change = record.get("dynamodb")
    if table is None or type(change) is not dict:
        return None
    digest = dynamodb_item_hash(table, change.get("Keys"), from_stream=True)
    return SpanPointer(DYNAMODB_ITEM, UPSTREAM, digest) if digest else None


# ---------------------------------------------------------------- the consumer side


def pointers_for_event(event: Any, trigger: Optional[str] = None) -> List[SpanPointer]:
    """Upstream pointers of an S3 ``ObjectCreated:*`` notification or a DynamoDB stream batch
    (one per record); ``trigger`` is the event source name when already known."""
    if type(event) is not dict:
        return []
    records = event.get("Records")
    if type(records) is not list or not records:
        return []
    if trigger is None:
        first = records[0]
        source = first.get("eventSource") if type(first) is dict else None
        trigger = {"aws:s3": "s3", "aws:dynamodb": "dynamodb"}.get(source) if type(source) is str else None
    if trigger == "s3":
        make = _s3_record_pointer
    elif trigger == "dynamodb":
        make = _dynamodb_record_pointer
    else:
        return []
    out: List[SpanPointer] = []
    for record in records[:MAX_RECORDS]:
        pointer = make(record)
        if pointer is not None:
            out.append(pointer)
    return out


# ---------------------------------------------------------------- the producer side (boto3 calls)


def parse_primary_keys(value: Optional[str]) -> Dict[str, FrozenSet[str]]:
    """``DD_BOTOCORE_DYNAMODB_TABLE_PRIMARY_KEYS``: JSON ``{"table": ["key", ...]}``. Like ddtrace,
    any malformed entry voids the whole setting (logged once per value, at debug level)."""
    if not value:
        return {}
    try:
        raw = json.loads(value)
    except ValueError:
        logger.debug("span pointers: DD_BOTOCORE_DYNAMODB_TABLE_PRIMARY_KEYS is not JSON")
        return {}
    if type(raw) is not dict:
        logger.debug("span pointers: DD_BOTOCORE_DYNAMODB_TABLE_PRIMARY_KEYS is not an object")
        return {}
    out: Dict[str, FrozenSet[str]] = {}
    for table, names in raw.items():
        if type(names) is not list or not all(type(n) is str for n in names) or len(set(names)) != len(names):
            logger.debug("span pointers: bad key names for table %r in DD_BOTOCORE_DYNAMODB_TABLE_PRIMARY_KEYS",
                         table)
            return {}
        out[table] = frozenset(names)
    return out


def _key_from_item(item: Any, names: Optional[FrozenSet[str]]) -> Optional[Dict[str, Any]]:
    if names is None or len(names) not in (1, 2) or type(item) is not dict:
        return None  # the table's key names are not configured: the item's key is unknown
    try:
        return {name: item[name] for name in names}
    except KeyError:
        return None


def _item_pointer(table: Any, key: Any) -> Optional[SpanPointer]:
    digest = dynamodb_item_hash(table, key) if key is not None else None
    return SpanPointer(DYNAMODB_ITEM, DOWNSTREAM, digest) if digest else None


def _batch_processed(requested: Any, unprocessed: Any) -> List[Tuple[Any, Any]]:
    """(table, write request) pairs DynamoDB applied: requested minus ``UnprocessedItems``."""
    if type(requested) is not dict:
        return []
    if type(unprocessed) is not dict:
        unprocessed = {}
    if any(table not in requested for table in unprocessed):
        return []  # an answer that does not match the request: claim nothing
    out: List[Tuple[Any, Any]] = []
    for table, writes in requested.items():
        if type(writes) is not list:
            continue
        left = unprocessed.get(table) or []
        if type(left) is not list or any(w not in writes for w in left):
            return []
        out.extend((table, w) for w in writes if w not in left)
    return out


def _dynamodb_call(operation: str, params: Dict[str, Any], response: Dict[str, Any],
                   key_names: Mapping[str, FrozenSet[str]]) -> List[Optional[SpanPointer]]:
    table: Any
    if operation == "PutItem":
        table = params.get("TableName")
        return [_item_pointer(table, _key_from_item(params.get("Item"), key_names.get(table)))]
    if operation in ("UpdateItem", "DeleteItem"):
        return [_item_pointer(params.get("TableName"), params.get("Key"))]
    out: List[Optional[SpanPointer]] = []
    if operation == "BatchWriteItem":
        for table, write in _batch_processed(params.get("RequestItems"), response.get("UnprocessedItems")):
            if type(write) is not dict or len(write) != 1:
                continue
            put, delete = write.get("PutRequest"), write.get("DeleteRequest")
            if type(put) is dict:
                out.append(_item_pointer(table, _key_from_item(put.get("Item"), key_names.get(table))))
            elif type(delete) is dict:
                out.append(_item_pointer(table, delete.get("Key")))
        return out
    if operation == "TransactWriteItems":
        items = params.get("TransactItems")
        for entry in items if type(items) is list else ():
            if type(entry) is not dict or len(entry) != 1:
                continue
            action, spec = next(iter(entry.items()))  # a ConditionCheck writes nothing
            if type(spec) is not dict:
                continue
            table = spec.get("TableName")
            if action == "Put":
                out.append(_item_pointer(table, _key_from_item(spec.get("Item"), key_names.get(table))))
            elif action in ("Update", "Delete"):
                out.append(_item_pointer(table, spec.get("Key")))
        return out
    return []


def _s3_call(operation: str, params: Dict[str, Any], response: Dict[str, Any]) -> List[Optional[SpanPointer]]:
    if operation in ("PutObject", "CompleteMultipartUpload"):
        etag = response.get("ETag")
    elif operation == "CopyObject":
        result = response.get("CopyObjectResult")
        etag = result.get("ETag") if type(result) is dict else None
    else:
        return []
    digest = s3_object_hash(params.get("Bucket"), params.get("Key"), etag)
    return [SpanPointer(S3_OBJECT, DOWNSTREAM, digest)] if digest else []


S3_OPERATIONS = ("PutObject", "CopyObject", "CompleteMultipartUpload")
DYNAMODB_OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


def pointers_for_call(service: str, operation: str, params: Any, response: Any,
                      dynamodb_key_names: Optional[Mapping[str, FrozenSet[str]]] = None) -> List[SpanPointer]:
    """Downstream pointers of a successful boto3 call: ``service`` is botocore's service id
    (``s3``, ``dynamodb``), ``params`` the call's parameters, ``response`` its parsed answer
    (the ETag of S3 writes). DynamoDB puts need the table's key names (``dynamodb_key_names``,
    from ``DD_BOTOCORE_DYNAMODB_TABLE_PRIMARY_KEYS``); updates and deletes carry their key."""
    if type(params) is not dict:
        return []
    if type(response) is not dict:
        response = {}
    if service == "s3":
        found = _s3_call(operation, params, response)
    elif service == "dynamodb":
        found = _dynamodb_call(operation, params, response, dynamodb_key_names or {})
    else:
        return []
    return [pointer for pointer in found if pointer is not None]


# ---------------------------------------------------------------- OTel links


def as_links(pointers: Iterable[SpanPointer]) -> List[Any]:
    """OTel ``Link``s for ``pointers``: the invalid span context (ids 0) with the pointer's
    attributes, which the SDK keeps because they are not empty."""
    from opentelemetry.trace import INVALID_SPAN_CONTEXT, Link

    return [Link(INVALID_SPAN_CONTEXT, pointer.attributes()) for pointer in pointers]


def add_to_span(span: Any, pointers: Iterable[SpanPointer]) -> int:
    """Add ``pointers`` to a started, recording span (``Span.add_link``, OTel API ≥ 1.23).
    Returns how many were added."""
    add_link = getattr(span, "add_link", None)
    if add_link is None or not span.is_recording():
        return 0
    from opentelemetry.trace import INVALID_SPAN_CONTEXT

    count = 0
    for pointer in pointers:
        add_link(INVALID_SPAN_CONTEXT, pointer.attributes())
        count += 1
    return count


def event_links(event: Any, trigger: Optional[str]) -> List[Any]:
    """The pointer links for the span that stands for this invocation's trigger (the inferred
    span, else the invocation span); [] unless ``DD_BOTOCORE_ADD_SPAN_POINTERS`` allows them.
    At most ``OTEL_SPAN_LINK_COUNT_LIMIT`` (the SDK would drop the rest)."""
    if trigger not in ("s3", "dynamodb"):
        return []
    from . import config

    if not config.add_span_pointers():
        return []
    return as_links(pointers_for_event(event, trigger)[:config.span_link_limit()])
