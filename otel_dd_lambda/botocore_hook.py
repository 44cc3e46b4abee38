"""Automatic injection into boto3 calls, as a botocore event hook.

``before-parameter-build.<service>.<Operation>`` fires with the call's parameters before they are
validated and serialized, so ``_datadog`` added there is sent like any user attribute. It covers
SQS SendMessage(Batch), SNS Publish(Batch), EventBridge PutEvents, Kinesis PutRecord(s), Lambda
Invoke and Step Functions StartExecution / StartSyncExecution, every entry of a batch, within the
batch's total size limit. The context is the caller's active span (with an OTel botocore
instrumentation installed, that is its client span, whichever was installed first: the event
fires inside its wrapper of ``_make_api_call``).

``install_botocore_hook()`` reaches every client, whenever it was created: a client made at module
level, before ``configure()``, is the usual Lambda pattern, and botocore copies event handlers
into a client only when it is created. So the class-level ``BaseClient._emit_api_params`` (the
method that emits ``before-parameter-build``) is wrapped to register the handlers on a client's
own emitter the first time that client makes a call. ``_make_api_call`` is left alone: OTel wraps
it with wrapt and its ``uninstrument()`` unwraps the outermost wrapper, whoever put it there.
``install_botocore_hook(target)`` registers on one client, a boto3 ``Session`` or a botocore
``Session``. Idempotent; ``uninstall_botocore_hook()`` removes every registration.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import injection as _inject
from .botocore_pointers import HANDLERS as _POINTER_HANDLERS

logger = logging.getLogger("otel_dd_lambda.botocore")

_UNIQUE_ID = "otel_dd_lambda.inject"
MAX_SQS_BATCH_BYTES = 256 * 1024
MAX_SNS_BATCH_BYTES = 256 * 1024
MAX_PUT_EVENTS_BYTES = 256 * 1024 - 1  # "the total entry size must be less than 256KB"
MAX_PUT_RECORDS_BYTES = 5 * 1024 * 1024


def _entry_bytes_kinesis(entry: Dict[str, Any]) -> int:
    return _inject._utf8_len(entry.get("Data")) + _inject._utf8_len(entry.get("PartitionKey"))


# (kind, batch entries key or None, entry size function, largest batch in bytes)
_OPERATIONS: Dict[Tuple[str, str], Tuple[str, Optional[str], Optional[Callable[[Dict[str, Any]], int]], int]] = {
    ("sqs", "SendMessage"): ("sqs", None, None, 0),
    ("sqs", "SendMessageBatch"): ("sqs", "Entries", _inject.sqs_message_bytes, MAX_SQS_BATCH_BYTES),
    ("sns", "Publish"): ("sns", None, None, 0),
    ("sns", "PublishBatch"): ("sns", "PublishBatchRequestEntries", _inject.sns_message_bytes, MAX_SNS_BATCH_BYTES),
    ("eventbridge", "PutEvents"): ("eventbridge", "Entries", _inject.eventbridge_entry_bytes, MAX_PUT_EVENTS_BYTES),
    ("kinesis", "PutRecord"): ("kinesis", None, None, 0),
    ("kinesis", "PutRecords"): ("kinesis", "Records", _entry_bytes_kinesis, MAX_PUT_RECORDS_BYTES),
    ("lambda", "Invoke"): ("lambda", None, None, 0),
    ("sfn", "StartExecution"): ("stepfunctions", None, None, 0),
    ("sfn", "StartSyncExecution"): ("stepfunctions", None, None, 0),
}
EVENT_NAMES = tuple("before-parameter-build.%s.%s" % key for key in _OPERATIONS)


def _inject_batch(entries: Any, kind: str, size_of: Callable[[Dict[str, Any]], int], limit: int) -> Optional[List[Any]]:
    """The entries with the context added where the batch limit allows, as a new list of new
    dicts (the caller's entries may be reused, e.g. resent on a retry); None when none changed."""
    if type(entries) not in (list, tuple):
        return None
    sizes = [size_of(e) if type(e) is dict else 0 for e in entries]
    total = sum(sizes)
    result = list(entries)
    changed = False
    for index, (entry, before) in enumerate(zip(entries, sizes)):
        if type(entry) is not dict:
            continue
        copy = dict(entry)  # shallow: inject replaces nested values, never mutates them
        if not _inject.inject(copy, kind):
            continue
        after = size_of(copy)
        if total - before + after > limit:
            _inject._skip(kind, "batch would exceed %d bytes" % limit)
            continue
        total += after - before
        result[index] = copy
        changed = True
    return result if changed else None


def _make_handler(kind: str, entries_key: Optional[str], size_of: Any, limit: int) -> Callable[..., None]:
    def handler(params: Any = None, **kwargs: Any) -> None:
        try:
            if type(params) is not dict:
                return
            if entries_key is None:
                _inject.inject(params, kind)
            else:
                entries = _inject_batch(params.get(entries_key), kind, size_of, limit)
                if entries is not None:
                    params[entries_key] = entries  # params is botocore's own dict of the call's kwargs
        except Exception:  # never break the user's AWS call
            logger.debug("botocore injection failed", exc_info=True)

    return handler


_HANDLERS: List[Tuple[str, Callable[..., None]]] = [
    ("before-parameter-build.%s.%s" % key, _make_handler(*spec)) for key, spec in _OPERATIONS.items()
] + _POINTER_HANDLERS  # span pointers on S3/DynamoDB writes (botocore_pointers.py)
_registered: "weakref.WeakSet[Any]" = weakref.WeakSet()  # event emitters we registered on
_register_lock = threading.Lock()
_original_emit_api_params: Optional[Callable[..., Any]] = None
_original_create_client: Optional[Callable[..., Any]] = None
_active = False  # the class-level wrapper stays inert after uninstall if another wrapper hides it


def _emitter(target: Any) -> Any:
    meta = getattr(target, "meta", None)
    if meta is not None and hasattr(meta, "events"):
        return meta.events  # a client
    botocore_session = getattr(target, "_session", None)
    if botocore_session is not None and hasattr(botocore_session, "register"):
        return botocore_session  # a boto3 Session
    return target  # a botocore Session


def _register(emitter: Any) -> None:
    # unique_id makes a second registration (or one copied from a session) a no-op in botocore.
    with _register_lock:
        for index, (event, handler) in enumerate(_HANDLERS):
            emitter.register(event, handler, unique_id="%s.%d" % (_UNIQUE_ID, index))
        try:
            _registered.add(emitter)
        except TypeError:  # not weak-referenceable: cannot be uninstalled individually
            pass


def _ensure_registered(client: Any) -> None:
    try:
        emitter = client.meta.events
        if _active and emitter not in _registered:
            _register(emitter)
    except Exception:  # never break the user's AWS call
        logger.debug("could not register on a botocore client", exc_info=True)


def install_botocore_hook(target: Any = None) -> None:
    """Inject into every supported call of ``target`` (client / session), or of every client."""
    global _original_emit_api_params, _original_create_client, _active
    if target is not None:
        _register(_emitter(target))
        return
    _active = True
    if _original_emit_api_params is not None or _original_create_client is not None:
        return  # already installed globally
    from botocore.client import BaseClient, ClientCreator

    current = getattr(BaseClient, "_emit_api_params", None)
    if getattr(current, "_otel_dd_lambda_hook", False):
        _original_emit_api_params = current.__wrapped__  # type: ignore[union-attr]  # a reloaded module's
        BaseClient._emit_api_params = _wrap_emit_api_params(_original_emit_api_params)
        return
    if current is not None:
        _original_emit_api_params = current
        BaseClient._emit_api_params = _wrap_emit_api_params(current)
        return
    # A botocore without _emit_api_params (older than 1.13): clients created from now on only.
    original = ClientCreator.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        _ensure_registered(client)
        return client

    create_client.__wrapped__ = original  # type: ignore[attr-defined]
    ClientCreator.create_client = create_client
    _original_create_client = original


def hook_installed() -> bool:
    """True while every client's calls are injected (``install_botocore_hook()`` with no target)."""
    return _active and (_original_emit_api_params is not None or _original_create_client is not None)


def _wrap_emit_api_params(original: Callable[..., Any]) -> Callable[..., Any]:
    def _emit_api_params(self: Any, *args: Any, **kwargs: Any) -> Any:
        _ensure_registered(self)
        return original(self, *args, **kwargs)

    _emit_api_params.__wrapped__ = original  # type: ignore[attr-defined]
    _emit_api_params._otel_dd_lambda_hook = True  # type: ignore[attr-defined]
    return _emit_api_params


def uninstall_botocore_hook() -> None:
    """Remove every registration made by :func:`install_botocore_hook`."""
    global _original_emit_api_params, _original_create_client, _active
    _active = False
    if _original_emit_api_params is not None:
        from botocore.client import BaseClient

        if getattr(BaseClient._emit_api_params, "_otel_dd_lambda_hook", False):
            BaseClient._emit_api_params = _original_emit_api_params
            _original_emit_api_params = None
        # else: someone wrapped over ours; it stays in place, inert (_active is False)
    if _original_create_client is not None:
        from botocore.client import ClientCreator

        ClientCreator.create_client = _original_create_client
        _original_create_client = None
    with _register_lock:
        for emitter in list(_registered):
            for index, (event, handler) in enumerate(_HANDLERS):
                try:
                    emitter.unregister(event, handler, unique_id="%s.%d" % (_UNIQUE_ID, index))
                except Exception:
                    pass
        _registered.clear()
