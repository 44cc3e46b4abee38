"""Automatic injection into boto3 calls, as a botocore event hook (no monkey-patched API call).

``before-parameter-build.<service>.<Operation>`` fires with the call's parameters before they are
validated and serialized, so ``_datadog`` added there is sent like any user attribute. It covers
SQS SendMessage(Batch), SNS Publish(Batch), EventBridge PutEvents, Kinesis PutRecord(s), Lambda
Invoke and Step Functions StartExecution / StartSyncExecution, every entry of a batch, within the
batch's total size limit. The context is the caller's active span (with an OTel botocore
instrumentation installed, that is its client span).

``install_botocore_hook(target)`` registers on a client, a boto3 ``Session`` or a botocore
``Session``; without a target, on every client created afterwards (botocore copies a session's
handlers into each client at creation, so this wraps ``ClientCreator.create_client``).
Idempotent; ``uninstall_botocore_hook()`` removes every registration.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import injection as _inject
from .botocore_pointers import HANDLERS as _POINTER_HANDLERS

logger = logging.getLogger("otel_dd_lambda.botocore")

_UNIQUE_ID = "otel_dd_lambda.inject"
MAX_SQS_BATCH_BYTES = 256 * 1024
MAX_SNS_BATCH_BYTES = 256 * 1024
MAX_PUT_EVENTS_BYTES = 256 * 1024
MAX_PUT_RECORDS_BYTES = 5 * 1024 * 1024


def _entry_bytes_eventbridge(entry: Dict[str, Any]) -> int:
    size = 14 + _inject._utf8_len(entry.get("Source")) + _inject._utf8_len(entry.get("DetailType"))
    return size + _inject._utf8_len(entry.get("Detail"))


def _entry_bytes_kinesis(entry: Dict[str, Any]) -> int:
    return _inject._utf8_len(entry.get("Data")) + _inject._utf8_len(entry.get("PartitionKey"))


# (kind, batch entries key or None, entry size function, batch byte limit)
_OPERATIONS: Dict[Tuple[str, str], Tuple[str, Optional[str], Optional[Callable[[Dict[str, Any]], int]], int]] = {
    ("sqs", "SendMessage"): ("sqs", None, None, 0),
    ("sqs", "SendMessageBatch"): ("sqs", "Entries", _inject.sqs_message_bytes, MAX_SQS_BATCH_BYTES),
    ("sns", "Publish"): ("sns", None, None, 0),
    ("sns", "PublishBatch"): ("sns", "PublishBatchRequestEntries", _inject.sns_message_bytes, MAX_SNS_BATCH_BYTES),
    ("eventbridge", "PutEvents"): ("eventbridge", "Entries", _entry_bytes_eventbridge, MAX_PUT_EVENTS_BYTES),
    ("kinesis", "PutRecord"): ("kinesis", None, None, 0),
    ("kinesis", "PutRecords"): ("kinesis", "Records", _entry_bytes_kinesis, MAX_PUT_RECORDS_BYTES),
    ("lambda", "Invoke"): ("lambda", None, None, 0),
    ("sfn", "StartExecution"): ("stepfunctions", None, None, 0),
    ("sfn", "StartSyncExecution"): ("stepfunctions", None, None, 0),
}
EVENT_NAMES = tuple("before-parameter-build.%s.%s" % key for key in _OPERATIONS)


def _inject_batch(entries: Any, kind: str, size_of: Callable[[Dict[str, Any]], int], limit: int) -> None:
    if type(entries) is not list:
        return
    sizes = [size_of(e) if type(e) is dict else 0 for e in entries]
    total = sum(sizes)
    for entry, before in zip(entries, sizes):
        if type(entry) is not dict:
            continue
        saved = dict(entry)  # shallow: nested values are replaced by inject, never mutated
        if not _inject.inject(entry, kind):
            continue
        after = size_of(entry)
        if total - before + after > limit:
            entry.clear()
            entry.update(saved)
            _inject._skip(kind, "batch would exceed %d bytes" % limit)
        else:
            total += after - before


def _make_handler(kind: str, entries_key: Optional[str], size_of: Any, limit: int) -> Callable[..., None]:
    def handler(params: Any = None, **kwargs: Any) -> None:
        try:
            if type(params) is not dict:
                return
            if entries_key is None:
                _inject.inject(params, kind)
            else:
                _inject_batch(params.get(entries_key), kind, size_of, limit)
        except Exception:  # never break the user's AWS call
            logger.debug("botocore injection failed", exc_info=True)

    return handler


_HANDLERS: List[Tuple[str, Callable[..., None]]] = [
    ("before-parameter-build.%s.%s" % key, _make_handler(*spec)) for key, spec in _OPERATIONS.items()
] + _POINTER_HANDLERS  # span pointers on S3/DynamoDB writes (botocore_pointers.py)
_registered: "weakref.WeakSet[Any]" = weakref.WeakSet()  # event emitters we registered on
_original_create_client: Optional[Callable[..., Any]] = None


def _emitter(target: Any) -> Any:
    meta = getattr(target, "meta", None)
    if meta is not None and hasattr(meta, "events"):
        return meta.events  # a client
    botocore_session = getattr(target, "_session", None)
    if botocore_session is not None and hasattr(botocore_session, "register"):
        return botocore_session  # a boto3 Session
    return target  # a botocore Session


def _register(emitter: Any) -> None:
    for index, (event, handler) in enumerate(_HANDLERS):
        emitter.register(event, handler, unique_id="%s.%d" % (_UNIQUE_ID, index))
    try:
        _registered.add(emitter)
    except TypeError:  # not weak-referenceable: cannot be uninstalled individually
        pass


def install_botocore_hook(target: Any = None) -> None:
    """Inject into every supported call of ``target`` (client / session), or of every new client."""
    global _original_create_client
    if target is not None:
        _register(_emitter(target))
        return
    if _original_create_client is not None:
        return  # already installed globally
    from botocore.client import ClientCreator

    original = ClientCreator.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        try:
            _register(client.meta.events)
        except Exception:
            logger.debug("could not register on a new botocore client", exc_info=True)
        return client

    create_client.__wrapped__ = original  # type: ignore[attr-defined]
    ClientCreator.create_client = create_client  # type: ignore[method-assign]
    _original_create_client = original


def uninstall_botocore_hook() -> None:
    """Remove every registration made by :func:`install_botocore_hook`."""
    global _original_create_client
    if _original_create_client is not None:
        from botocore.client import ClientCreator

        ClientCreator.create_client = _original_create_client  # type: ignore[method-assign]
        _original_create_client = None
    for emitter in list(_registered):
        for index, (event, handler) in enumerate(_HANDLERS):
            try:
                emitter.unregister(event, handler, unique_id="%s.%d" % (_UNIQUE_ID, index))
            except Exception:
                pass
    _registered.clear()
