"""Cold starts: which invocation is the first of its sandbox, and what the init phase imported.

- ``invocation_state()`` answers, once per invocation, ``(cold_start, proactive_initialization)``.
  The first invocation is a cold start, unless more than 10 s passed between init (this module's
  import, or ``mark_init()``) and that invocation: Lambda then initialised the sandbox ahead of
  demand ("proactive initialization"), and nobody waited for the init — not a cold start.
- ``install_import_hook()`` times every module loaded from a file until ``take_imports()`` is
  called (``DD_COLD_START_TRACING``); ``emit_import_spans()`` turns the slow ones into
  ``aws.lambda.load`` / ``aws.lambda.import`` spans under the first invocation, as Datadog does.

Per process: Lambda Managed Instances run Python as forked worker processes (awslambdaric forks
them before it loads the handler), each serving its own invocations, so each worker's first
invocation is a cold start by the same rule, as datadog_lambda counts it. A process forked after
it served invocations (``multiprocessing`` in a handler) inherits the count, it is no new sandbox.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, List, Optional, Tuple

from .import_hooks import ChainedFinder

PROACTIVE_INIT_THRESHOLD_NS = 10 * 1_000_000_000
MAX_RECORDS = 10_000  # bounded memory even if init imports a whole distribution

_init_ns: int = time.time_ns()
_invocations: int = 0
_restored: bool = False  # the sandbox was restored from a SnapStart snapshot
_lock = threading.Lock()


def mark_init(timestamp_ns: Optional[int] = None) -> None:
    """Set the sandbox's init time (default: now). Only before the first invocation."""
    global _init_ns
    if _invocations == 0:
        _init_ns = time.time_ns() if timestamp_ns is None else timestamp_ns


def mark_restore(timestamp_ns: Optional[int] = None) -> None:
    """A SnapStart restore (default: now) begins a new sandbox: its first invocation is a cold
    start whose init is the restore, whatever happened before the snapshot."""
    global _init_ns, _invocations, _restored
    with _lock:
        _invocations = 0
        _restored = True
        _init_ns = time.time_ns() if timestamp_ns is None else timestamp_ns


def restored() -> bool:
    """Whether this sandbox was restored from a snapshot."""
    return _restored


def init_time_ns() -> int:
    return _init_ns


def invocation_state(now_ns: Optional[int] = None) -> Tuple[bool, bool]:
    """``(cold_start, proactive_initialization)`` for the invocation starting now."""
    global _invocations
    with _lock:
        _invocations += 1
        first = _invocations == 1
    if not first:
        return False, False
    now = time.time_ns() if now_ns is None else now_ns
    # whole seconds strictly over 10, as datadog_lambda counts them
    if (now - _init_ns) // 1_000_000_000 > PROACTIVE_INIT_THRESHOLD_NS // 1_000_000_000:
        return False, True
    return True, False


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _reset_for_tests(init_ns: Optional[int] = None) -> None:
    global _invocations, _init_ns, _restored
    _invocations = 0
    _restored = False
    _init_ns = time.time_ns() if init_ns is None else init_ns


# ---------------------------------------------------------------- import timing


class ImportRecord:
    __slots__ = ("name", "filename", "start_ns", "end_ns", "parent", "children")

    def __init__(self, name: str, filename: Optional[str], start_ns: int, parent: Optional["ImportRecord"]):
        self.name = name
        self.filename = filename
        self.start_ns = start_ns
        self.end_ns = start_ns
        self.parent = parent
        self.children: List[ImportRecord] = []


class _ImportTimer(ChainedFinder):
    """Times the execution of every module loaded from a file, nested as imported."""

    def __init__(self) -> None:
        super().__init__()
        self.roots: List[ImportRecord] = []
        self.count = 0

    def wants(self, fullname: str) -> bool:
        return self.count < MAX_RECORDS

    def wraps(self, spec: Any) -> bool:
        # Built-in and frozen modules load in microseconds; only file-backed ones are timed.
        return bool(spec.has_location)

    def begin(self, name: str, filename: Optional[str]) -> Optional[ImportRecord]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        parent = stack[-1] if stack else None
        record = ImportRecord(name, filename, time.time_ns(), parent)
        if parent is None:
            self.roots.append(record)
        else:
            parent.children.append(record)
        self.count += 1
        stack.append(record)
        return record

    def end(self, name: str, record: Optional[ImportRecord], succeeded: bool) -> None:
        if record is None:
            return
        record.end_ns = time.time_ns()
        stack = getattr(self._local, "stack", None)
        if stack and stack[-1] is record:
            stack.pop()


_hook: Optional[_ImportTimer] = None


def install_import_hook() -> bool:
    """Start timing imports (idempotent). False when already taken (after the first invocation)."""
    global _hook
    if _hook is not None:
        return True
    if _invocations:
        return False
    _hook = _ImportTimer()
    _hook.install()
    return True


def take_imports() -> List[ImportRecord]:
    """Stop timing imports and return the top-level records (empty when no hook ran)."""
    global _hook
    hook = _hook
    if hook is None:
        return []
    hook.uninstall()
    _hook = None
    return hook.roots


def hook_installed() -> bool:
    return _hook is not None


def _operation_name(filename: Optional[str]) -> str:
    # Datadog's classification of where a module came from.
    if not filename:
        return "aws.lambda.import_core_module"
    if filename.startswith("/opt/"):
        return "aws.lambda.import_layer"
    if filename.startswith("/var/lang/"):
        return "aws.lambda.import_runtime"
    return "aws.lambda.import"


def emit_import_spans(
    tracer: Any,
    parent_context: Any,
    roots: List[ImportRecord],
    function_name: str,
    before_ns: int,
    min_duration_ms: int,
    skip_libs: Any = (),
) -> int:
    """Spans for the imports of ``roots`` lasting at least ``min_duration_ms``; returns how many.

    One ``aws.lambda.load`` span covers the init imports (ending no later than ``before_ns``, the
    invocation's start); each slow import is an ``aws.lambda.import`` span, nested as imported.
    """
    from opentelemetry import trace

    min_ns = max(0, int(min_duration_ms)) * 1_000_000
    slow = [r for r in roots if r.end_ns - r.start_ns >= min_ns and r.name not in skip_libs]
    if not slow:
        return 0
    start = roots[0].start_ns
    end = min(max(r.end_ns for r in roots), before_ns)
    load = tracer.start_span(
        "aws.lambda.load",
        context=parent_context,
        start_time=start,
        attributes={"operation.name": "aws.lambda.load", "resource.name": function_name},
    )
    count = 1

    def emit(record: ImportRecord, parent_span: Any) -> None:
        nonlocal count
        if record.end_ns - record.start_ns < min_ns or record.name in skip_libs:
            return
        attributes = {
            "operation.name": _operation_name(record.filename),
            "resource.name": record.name,
        }
        if record.filename:
            attributes["filename"] = record.filename
        span = tracer.start_span(
            "import " + record.name,
            context=trace.set_span_in_context(parent_span),
            start_time=record.start_ns,
            attributes=attributes,
        )
        count += 1
        for child in record.children:
            emit(child, span)
        span.end(end_time=record.end_ns)

    for record in slow:
        emit(record, load)
    load.end(end_time=max(end, start))
    return count
