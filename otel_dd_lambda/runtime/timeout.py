"""Impending timeout: end and flush the invocation's spans before Lambda kills the process.

When an invocation reaches its timeout, Lambda stops the sandbox and whatever the handler had not
finished is lost, its invocation span included. ``DD_APM_FLUSH_DEADLINE_MILLISECONDS`` (default
100) before the deadline, the watchdog ends the invocation span (and the synchronous inferred
span) as an error, ``error.type`` "Impending Timeout" as ddtrace tags it, and flushes it within the
time left. Should the handler finish after all, its result or exception goes back unchanged and
the spans are not ended a second time: whichever of the watchdog and the normal end claims an
invocation first ends its spans, the other leaves them.

One daemon thread per process (a forked child starts its own) waits on a condition for the armed
invocation's fire time, so it fires whatever the handler's thread is doing: sleeping, blocked in C
on a socket or a lock, or running Python (a signal such as ddtrace's ``SIGALRM`` only runs between
bytecodes of the main thread). It is started by the first invocation and reused; arming and disarming
take one lock and set a field. It cannot fire while a C extension holds the GIL without releasing it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Optional

from ..lambda_context import remaining_ms

logger = logging.getLogger(__name__)

ERROR_TYPE = "Impending Timeout"  # ddtrace's error.type for it
ERROR_MESSAGE = "Datadog detected an Impending Timeout"  # and its error.message


class Guard:
    """One armed invocation: when the watchdog fires, and the claim on ending its spans.

    The claim is taken under the watchdog's lock (``Watchdog.disarm`` or the watchdog thread): one
    lock for arming, disarming and claiming, so the normal end of an invocation takes it once.
    """

    __slots__ = ("fire_at", "deadline", "instrumentation", "state", "claimed",
                 "fired_ns", "flush_timeout_ms", "flushed_ns")

    def __init__(self, fire_at: float, deadline: float, instrumentation: Any, state: Any) -> None:
        self.fire_at = fire_at  # time.monotonic() values
        self.deadline = deadline
        self.instrumentation = instrumentation
        self.state = state
        self.claimed = False  # by the watchdog or by the normal end, whichever came first
        # what the watchdog did, for tests and debugging (None until it fires)
        self.fired_ns: Optional[int] = None
        self.flush_timeout_ms: Optional[int] = None
        self.flushed_ns: Optional[int] = None

    @property
    def fired(self) -> bool:
        return self.fired_ns is not None


class Watchdog:
    """The process's watchdog thread and the one invocation it is armed for."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._guard: Optional[Guard] = None
        # When the thread wakes next on its own (monotonic; None: not before a notify). A warm
        # sandbox arms a later fire time on every invocation: the thread, waiting for an earlier
        # one, finds the new guard when it wakes, so arming notifies only when the new fire time
        # comes first. A wake-up per invocation was a thread switch on the handler's path.
        self._wakes_at: Optional[float] = None
        # The fire time of the last guard armed: the thread's next wake-up when it finds no guard
        # (see ``_next_due``).
        self._last_fire_at: Optional[float] = None
        self._thread: Optional[threading.Thread] = None
        self.last_fired: Optional[Guard] = None  # the last invocation it ended (tests, debugging)

    @property
    def thread(self) -> Optional[threading.Thread]:
        return self._thread

    def arm(self, guard: Guard) -> None:
        with self._cond:
            if self._thread is None:  # first arm, or a forked child (the fork hook cleared it)
                self._start()
            self._guard = guard
            self._last_fire_at = guard.fire_at
            wakes_at = self._wakes_at
            if wakes_at is None or guard.fire_at < wakes_at:
                self._cond.notify()

    def disarm(self, guard: Guard) -> bool:
        """Stop watching ``guard``; True if this call claimed it (the watchdog had not)."""
        # No notify: the thread wakes at the old fire time, finds nothing and waits again.
        with self._cond:
            if self._guard is guard:
                self._guard = None
            if guard.claimed:
                return False
            guard.claimed = True
            return True

    def _start(self) -> None:
        self._wakes_at = None  # the new thread looks at the guard as it starts
        thread = threading.Thread(target=self._run, name="otel-dd-lambda-timeout", daemon=True)
        thread.start()
        self._thread = thread

    def _run(self) -> None:
        try:
            while True:
                guard = self._next_due()
                if guard is not None:
                    _fire(guard)  # outside the lock: the next invocation can arm meanwhile
        except Exception:  # a bug of ours: said, and the next arm() starts a new thread
            logger.warning("impending-timeout watchdog stopped", exc_info=True)
        finally:
            with self._cond:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _next_due(self) -> Optional[Guard]:
        """Wait for the armed invocation's fire time; the guard the watchdog claimed, or None
        when the invocation claimed it first."""
        cond = self._cond
        with cond:
            while True:
                guard = self._guard
                now = time.monotonic()
                if guard is not None and guard.fire_at <= now:
                    self._guard = None
                    if guard.claimed:
                        return None
                    guard.claimed = True
                    return guard
                # No guard: the invocation that notified usually ended before this thread ran
                # (its thread keeps the GIL). Waiting for its fire time all the same, not for a
                # notify, is what spares the next warm arm (a later fire time) from notifying.
                wakes_at = guard.fire_at if guard is not None else self._last_fire_at
                if wakes_at is None or wakes_at <= now:
                    self._wakes_at = None
                    cond.wait()
                else:
                    self._wakes_at = wakes_at
                    cond.wait(wakes_at - now)

    def _after_fork_in_child(self) -> None:
        # The parent's thread is not in the child, its lock may have been held at the fork, and
        # its armed invocation is the parent's: the child starts its own on its first arm().
        self._cond = threading.Condition(threading.Lock())
        self._thread = None
        self._guard = None
        self._wakes_at = None
        self._last_fire_at = None
        self.last_fired = None


_watchdog = Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_watchdog._after_fork_in_child)


def watchdog() -> Watchdog:
    return _watchdog


def arm(instrumentation: Any, state: Any, context: Any) -> Optional[Guard]:
    """Watch this invocation; None when off or when its context gives no usable deadline."""
    settings = instrumentation.settings
    if not settings.timeout_detection:
        return None
    left = remaining_ms(context)  # within Lambda's bounds, or None
    if left is None or left <= 0:
        return None
    lead_ms = left - settings.apm_flush_deadline_ms
    if lead_ms <= 0:  # already inside the flush window: nothing to gain from firing now
        return None
    now = time.monotonic()
    guard = Guard(now + lead_ms / 1000.0, now + left / 1000.0, instrumentation, state)
    try:
        _watchdog.arm(guard)
    except Exception:  # no thread to be had (RuntimeError): the invocation goes unwatched
        logger.debug("impending-timeout watchdog unavailable", exc_info=True)
        return None
    return guard


def disarm(guard: Guard) -> bool:
    """At the normal end of the invocation: True if it still owns its spans (the watchdog did
    not fire), False if the watchdog ended them."""
    if not _watchdog.disarm(guard):
        return False
    # the guard and the invocation's state refer to each other: break the cycle now, or the
    # invocation's spans wait for the cyclic garbage collector
    guard.state = guard.instrumentation = None
    return True


def _fire(guard: Guard) -> None:
    """On the watchdog thread, with the guard claimed: end the invocation as an impending
    timeout, then flush."""
    guard.fired_ns = time.time_ns()
    _watchdog.last_fired = guard
    instrumentation, state = guard.instrumentation, guard.state
    try:
        from opentelemetry.trace import Status, StatusCode

        tags = {"error.type": ERROR_TYPE, "error.message": ERROR_MESSAGE}
        for span in (state.span, state.inferred):
            if span is not None:
                span.set_attributes(tags)
                span.set_status(Status(StatusCode.ERROR, ERROR_MESSAGE))
                span.end()
        instrumentation.finish_cold_start(state)  # the cold start is what a timeout often is
    except Exception:
        logger.debug("ending the timed-out invocation failed", exc_info=True)
    # Flushed even with flush=False: nobody else will before Lambda stops the process.
    force_flush = getattr(instrumentation.provider, "force_flush", None)
    if force_flush is None:
        return
    timeout_ms = int((guard.deadline - time.monotonic()) * 1000)
    guard.flush_timeout_ms = timeout_ms
    if timeout_ms > 0:
        try:
            force_flush(timeout_ms)
        except Exception:
            logger.debug("impending-timeout flush failed", exc_info=True)
    guard.flushed_ns = time.time_ns()
