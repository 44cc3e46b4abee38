"""Import timing for cold-start tracing (``DD_COLD_START_TRACING``): ``ImportTimer`` records every
module loaded from a file, nested as imported, and ``emit_import_spans`` turns the slow ones into
``aws.lambda.load`` / ``aws.lambda.import`` spans, as Datadog does. ``cold_start`` owns the timer's
state; this module loads only when a function times its imports."""

from __future__ import annotations

import time
from typing import Any, List, Optional

from .import_hooks import ChainedFinder


class ImportRecord:
    __slots__ = ("name", "filename", "start_ns", "end_ns", "parent", "children")

    def __init__(self, name: str, filename: Optional[str], start_ns: int, parent: Optional["ImportRecord"]):
        self.name = name
        self.filename = filename
        self.start_ns = start_ns
        self.end_ns = start_ns
        self.parent = parent
        self.children: List[ImportRecord] = []


class ImportTimer(ChainedFinder):
    """Times the execution of every module loaded from a file, nested as imported."""

    def __init__(self, max_records: int) -> None:
        super().__init__()
        self.max_records = max_records
        self.roots: List[ImportRecord] = []
        self.count = 0

    def wants(self, fullname: str) -> bool:
        return self.count < self.max_records

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
