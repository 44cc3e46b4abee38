"""``LambdaSpanProcessor``: collect spans in memory, export them synchronously on ``force_flush``.

Lambda freezes the process as soon as the handler returns, so a background export thread may
sleep through the send and wake (or die) mid-request later. In Lambda the processor therefore only
collects finished, sampled spans (up to ``max_queue_size``, default ``OTEL_BSP_MAX_QUEUE_SIZE`` or
2048, about 8 MiB of spans with 10 attributes; more are dropped and counted) and the handler
calls ``force_flush(timeout_millis)`` at the end of each invocation with the time it has left:
the export runs on the caller's thread and returns within that time.

Outside Lambda (no ``AWS_LAMBDA_FUNCTION_NAME``), or with ``background=True``, it batches in the
background with the SDK's ``BatchSpanProcessor``.

Fork-safe: a forked child starts with an empty queue (it exports its own spans only).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import List, Optional

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_dd_lambda import config
from otel_dd_lambda.exporters.deadline import timeout_millis as timeout_millis_of
from otel_dd_lambda.exporters.deadline import timeout_seconds

logger = logging.getLogger(__name__)


class LambdaSpanProcessor(SpanProcessor):
    """Synchronous, bounded span collection for Lambda; background batching elsewhere."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: Optional[int] = None,
        background: Optional[bool] = None,
        schedule_delay_millis: float = 5000,
        max_export_batch_size: int = 512,
        export_timeout_millis: float = 30000,
    ) -> None:
        self.exporter = exporter
        if max_queue_size is None or background is None:
            settings = config.exporter_settings()
            if max_queue_size is None:
                max_queue_size = settings.max_queue_size
            if background is None:
                background = not settings.in_lambda
        self.max_queue_size = max(1, int(max_queue_size))
        self.background = bool(background)
        self._batch: Optional[SpanProcessor] = None
        if self.background:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self._batch = BatchSpanProcessor(
                exporter,
                max_queue_size=self.max_queue_size,
                schedule_delay_millis=schedule_delay_millis,
                max_export_batch_size=min(max_export_batch_size, self.max_queue_size),
                export_timeout_millis=export_timeout_millis,
            )
        self._spans: List[ReadableSpan] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.dropped_spans = 0  # beyond max_queue_size
        self._warned = False
        self._shutdown = False
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork_in_child)

            def hook() -> None:
                method = ref()
                if method is not None:
                    method()

            os.register_at_fork(after_in_child=hook)

    @property
    def queued_spans(self) -> int:
        return len(self._spans)

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        if self._batch is not None:
            self._batch.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self._batch is not None:
            self._batch.on_end(span)
            return
        if self._shutdown or not span.context.trace_flags.sampled:
            return
        with self._lock:
            if len(self._spans) < self.max_queue_size:
                self._spans.append(span)
                return
            self.dropped_spans += 1
            warn = not self._warned
            self._warned = True
        if warn:
            logger.warning(
                "span queue full (%d spans): dropping spans until the next flush",
                self.max_queue_size)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything collected, on this thread, within ``timeout_millis``.

        Any value is accepted (NaN or negative: no wait; ``inf`` or huge: capped) and no span is
        lost: spans not handed to the exporter go back to the queue.
        """
        seconds = timeout_seconds(timeout_millis)
        if self._batch is not None:
            try:
                return self._batch.force_flush(timeout_millis_of(seconds))
            except Exception:
                logger.exception("span flush failed")
                return False
        deadline = time.monotonic() + seconds
        spans: List[ReadableSpan] = []
        handed = False
        try:
            with self._lock:
                spans, self._spans = self._spans, []
                self._warned = False
            remaining = deadline - time.monotonic()
            if not self._flush_lock.acquire(timeout=max(0.0, remaining)):
                return False  # another flush is running: the spans go back (finally)
            try:
                export_until = getattr(self.exporter, "export_until", None)
                handed = True
                if export_until is not None:
                    result = export_until(spans, deadline)
                else:
                    # a plain SDK exporter has no deadline argument; flush its own queue after
                    result = self.exporter.export(spans) if spans else SpanExportResult.SUCCESS
                    remaining_ms = timeout_millis_of(deadline - time.monotonic())
                    flushed = self.exporter.force_flush(remaining_ms)
                    if flushed is False:
                        return False
                return result is SpanExportResult.SUCCESS
            finally:
                self._flush_lock.release()
        except Exception:  # never into the handler
            logger.exception("span flush failed")
            return False
        finally:
            if not handed and spans:
                with self._lock:  # not exported: back in front of newer spans
                    self._spans[:0] = spans

    def shutdown(self) -> None:
        if self._shutdown:
            return
        if self._batch is not None:
            self._batch.shutdown()  # flushes, then shuts the exporter down
            self._shutdown = True
            return
        try:
            self.force_flush()
        finally:
            self._shutdown = True
            try:
                self.exporter.shutdown()
            except Exception:
                logger.exception("exporter shutdown failed")

    def _after_fork_in_child(self) -> None:
        # the parent's spans are the parent's to export; its locks may be held by dead threads
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._spans = []


__all__ = ["LambdaSpanProcessor"]

