"""Impending timeout, in process: the watchdog ends the invocation span as ddtrace's "Impending
Timeout" error and flushes it while the handler is still running, the handler's result or
exception is unchanged when it finishes after all, exactly one of the two ends the spans, one
thread serves every invocation, and the watchdog's flush is bounded by the time left."""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time

import pytest
from opentelemetry.trace import StatusCode

from otel_dd_lambda import config
from otel_dd_lambda.exporters.datadog import DatadogSpanExporter
from otel_dd_lambda.exporters.mapping import SpanMapper
from otel_dd_lambda.lambda_context import MAX_REMAINING_MS, remaining_ms
from otel_dd_lambda.runtime import timeout
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.agent import BLOCK, FakeAgent
from tests.support.wrapper import FakeContext, fresh_sandbox, pipeline, sample


@pytest.fixture(autouse=True)
def _sandbox(monkeypatch):
    yield from fresh_sandbox(monkeypatch, ("DD_TRACE_ENABLED", "DD_APM_FLUSH_DEADLINE_MILLISECONDS",
                                           "DD_TRACE_AWS_LAMBDA_ENABLED", "DD_TRACE_MANAGED_SERVICES",
                                           "OTEL_SDK_DISABLED", "_X_AMZN_TRACE_ID"))


class SdkWarnings(logging.Handler):
    """The SDK's warnings about a span used after its end (a second end() among them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> "SdkWarnings":
        logging.getLogger("opentelemetry.sdk.trace").addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger("opentelemetry.sdk.trace").removeHandler(self)


def invocation_spans(spans):
    return [s for s in spans if "faas.invocation_id" in s.attributes]


def assert_impending_timeout(span):
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "Impending Timeout"
    assert span.attributes["error.message"] == "Datadog detected an Impending Timeout"
    dd = SpanMapper().map_chunks([span])[0][0]
    assert dd["error"] == 1 and dd["name"] == "aws.lambda"
    assert dd["meta"]["error.type"] == "Impending Timeout"
    assert dd["meta"]["error.message"] == dd["meta"]["error.msg"] == "Datadog detected an Impending Timeout"


def test_span_ended_and_flushed_while_the_handler_still_sleeps():
    provider, memory = pipeline()
    seen_during = []
    result = {"done": True}

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        time.sleep(1.2)  # past the 1000 ms the context gives
        seen_during.extend(memory.get_finished_spans())
        return result

    with SdkWarnings() as warnings:
        assert handler({}, FakeContext(remaining_ms=1000)) is result
    [span] = invocation_spans(seen_during)  # exported by the watchdog, before the handler returned
    assert_impending_timeout(span)
    # ended DD_APM_FLUSH_DEADLINE_MILLISECONDS (100) before the deadline, not after it
    assert 900e6 <= span.end_time - span.start_time < 1000e6
    guard = timeout.watchdog().last_fired
    assert guard.state.span.context.span_id == span.context.span_id
    assert 0 < guard.flush_timeout_ms <= 100
    assert invocation_spans(memory.get_finished_spans()) == [span]  # the normal end added none
    assert warnings.messages == []


def test_exception_after_the_watchdog_fired_is_unchanged():
    provider, memory = pipeline()
    error = LookupError("late")

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        time.sleep(0.35)
        raise error

    with SdkWarnings() as warnings, pytest.raises(LookupError) as raised:
        handler({}, FakeContext(remaining_ms=300))
    assert raised.value is error
    assert raised.traceback[-1].name == "handler"
    [span] = invocation_spans(memory.get_finished_spans())
    assert_impending_timeout(span)
    assert not [e for e in span.events if e.name == "exception"]  # ended before the exception
    assert warnings.messages == []


def test_inferred_span_is_ended_as_an_error_too():
    provider, memory = pipeline()

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        time.sleep(0.35)
        return {"statusCode": 200}

    event = sample("api-gateway.json")
    event["requestContext"]["requestTimeEpoch"] = int(time.time() * 1000) - 20
    with SdkWarnings() as warnings:
        handler(event, FakeContext(remaining_ms=300))
    spans = memory.get_finished_spans()
    [invocation] = invocation_spans(spans)
    assert_impending_timeout(invocation)
    inferred = [s for s in spans if s is not invocation and s.context.span_id == invocation.parent.span_id]
    assert len(inferred) == 1 and len(spans) == 2
    assert inferred[0].status.status_code is StatusCode.ERROR
    assert inferred[0].attributes["error.type"] == "Impending Timeout"
    assert "http.status_code" not in invocation.attributes  # the response came too late to tag
    assert warnings.messages == []


def test_blocked_in_c_without_the_gil():
    provider, memory = pipeline()
    left, right = socket.socketpair()
    seen_during = []

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        left.settimeout(1.0)
        try:
            left.recv(1)  # blocks in the kernel; the main thread runs no bytecode meanwhile
        except socket.timeout:
            pass
        seen_during.extend(memory.get_finished_spans())
        return "late"

    try:
        assert handler({}, FakeContext(remaining_ms=500)) == "late"
    finally:
        left.close()
        right.close()
    [span] = invocation_spans(seen_during)
    assert_impending_timeout(span)


def test_normal_end_wins_and_disarms():
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: "fast", tracer_provider=provider)
    before = timeout.watchdog().last_fired
    assert handler({}, FakeContext(remaining_ms=300)) == "fast"
    time.sleep(0.35)  # past the fire time the invocation had
    [span] = invocation_spans(memory.get_finished_spans())
    assert span.status.status_code is StatusCode.UNSET and "error.type" not in span.attributes
    assert timeout.watchdog().last_fired is before


def test_one_thread_for_every_invocation():
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: 1, tracer_provider=provider)
    handler({}, FakeContext())
    thread = timeout.watchdog().thread
    assert thread is not None and thread.daemon and thread.is_alive()
    count = threading.active_count()
    for _ in range(50):
        handler({}, FakeContext())
    assert threading.active_count() == count and timeout.watchdog().thread is thread
    assert len(memory.get_finished_spans()) == 51


def test_race_between_watchdog_and_normal_end_ends_each_span_once():
    """Handlers finishing around their fire time: whoever claims first ends the span, once."""
    provider, memory = pipeline()
    results = []

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        time.sleep(event["sleep"])
        results.append(event["sleep"])
        return event

    fired = 0
    with SdkWarnings() as warnings:
        for index in range(40):
            event = {"sleep": 0.01 + (index % 8) * 0.001}
            assert handler(event, FakeContext(remaining_ms=110 + (index % 5), request_id="r%d" % index)) is event
            spans = invocation_spans(memory.get_finished_spans())
            mine = [s for s in spans if s.attributes["faas.invocation_id"] == "r%d" % index]
            assert len(mine) == 1, index
            fired += mine[0].attributes.get("error.type") == "Impending Timeout"
    assert len(results) == 40 and len(invocation_spans(memory.get_finished_spans())) == 40
    assert warnings.messages == []


def test_switched_off_by_ddtraces_integration_switch(monkeypatch):
    monkeypatch.setenv("DD_TRACE_AWS_LAMBDA_ENABLED", "false")
    provider, memory = pipeline()

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        time.sleep(0.35)
        return 1

    before = timeout.watchdog().last_fired
    handler({}, FakeContext(remaining_ms=300))
    [span] = invocation_spans(memory.get_finished_spans())
    assert span.status.status_code is StatusCode.UNSET
    assert timeout.watchdog().last_fired is before


@pytest.mark.parametrize("value,expected", [
    (None, 100), ("250", 250), ("0", 0), ("-1", 100), ("soon", 100), ("", 100)])
def test_flush_deadline_setting(value, expected):
    env = {} if value is None else {"DD_APM_FLUSH_DEADLINE_MILLISECONDS": value}
    assert config.lambda_settings(env).apm_flush_deadline_ms == expected
    assert config.lambda_settings(env).timeout_detection is True
    assert config.lambda_settings({"DD_TRACE_AWS_LAMBDA_ENABLED": "false"}).timeout_detection is False


def test_flush_deadline_moves_the_fire_time(monkeypatch):
    monkeypatch.setenv("DD_APM_FLUSH_DEADLINE_MILLISECONDS", "400")
    provider, memory = pipeline()

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        time.sleep(0.8)
        return 1

    handler({}, FakeContext(remaining_ms=1000))
    [span] = invocation_spans(memory.get_finished_spans())
    assert_impending_timeout(span)
    assert 600e6 <= span.end_time - span.start_time < 800e6


class Remaining(FakeContext):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def get_remaining_time_in_millis(self):
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


UNUSABLE = ["900", True, math.nan, math.inf, -5, 0, 10 ** 12, None, [1], ValueError("no"), 1.5e300]


@pytest.mark.parametrize("value", UNUSABLE)
def test_unusable_remaining_time_is_no_deadline_or_lambdas_longest(value):
    left = remaining_ms(Remaining(value))
    if value in (-5, 0):
        assert left == value  # no time left: nothing to watch
    elif value in (10 ** 12, 1.5e300):
        assert left == MAX_REMAINING_MS  # a watch no invocation outlives
    else:
        assert left is None
    assert remaining_ms(object()) is None
    assert remaining_ms(None) is None


@pytest.mark.parametrize("value", UNUSABLE)
def test_unusable_remaining_time_leaves_the_handler_alone(value):
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, ctx: "ok", tracer_provider=provider)
    before = timeout.watchdog().last_fired
    assert handler({}, Remaining(value)) == "ok"
    assert timeout.watchdog().last_fired is before


def test_watchdog_flush_is_bounded_by_the_time_left():
    """A stuck agent: the watchdog's flush gives up by the invocation's deadline."""
    provider = None
    try:
        with FakeAgent(lambda request: BLOCK) as agent:
            provider, _ = pipeline(DatadogSpanExporter(agent.url, mode="agent"))

            @instrument_handler(tracer_provider=provider)
            def handler(event, context):
                time.sleep(0.9)
                return 1

            start = time.time_ns()
            handler({}, FakeContext(remaining_ms=400))
            guard = timeout.watchdog().last_fired
            assert guard is not None and guard.state.span.start_time >= start
            assert agent.blocked.is_set()  # the watchdog's export reached the agent and hung there
            assert guard.flushed_ns is not None
            # fired at 300 ms, gave up by the 400 ms deadline (+ a generous scheduling bound)
            assert guard.fired_ns - start >= 300e6
            assert guard.flushed_ns - start <= 400e6 + 500e6
            assert 0 < guard.flush_timeout_ms <= 100
    finally:
        # the span the agent never took is still buffered: drop it now, with the agent gone,
        # rather than in the SDK's exit hook after pytest has stopped capturing the warning
        if provider is not None:
            provider.shutdown()


def test_short_invocation_after_long_ones_fires_on_time():
    """Arming wakes the watchdog only for an earlier fire time than the one it waits for: after
    warm invocations with a 60 s budget (the thread waits ~60 s), one with 1 s must still be ended
    ~100 ms before its deadline, and the next long-budget invocation must not be fired early."""
    provider, memory = pipeline()

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        time.sleep(event["sleep"])
        return event["sleep"]

    for _ in range(3):  # warm: later fire time each time, no wake-up needed
        assert handler({"sleep": 0}, FakeContext(remaining_ms=60000)) == 0
    started = time.monotonic()
    assert handler({"sleep": 1.2}, FakeContext(remaining_ms=1000)) == 1.2
    guard = timeout.watchdog().last_fired
    assert guard is not None and guard.state.span.attributes["error.type"] == "Impending Timeout"
    assert 0.85 <= (guard.fired_ns / 1e9) - (time.time() - (time.monotonic() - started)) < 1.0
    before = timeout.watchdog().last_fired
    assert handler({"sleep": 0.3}, FakeContext(remaining_ms=60000)) == 0.3
    assert timeout.watchdog().last_fired is before  # not fired: its fire time is 60 s away
    spans = invocation_spans(memory.get_finished_spans())
    assert len(spans) == 5 and sum("error.type" in s.attributes for s in spans) == 1


def test_warm_invocations_do_not_wake_the_watchdog(monkeypatch):
    """The watchdog's thread usually looks at an invocation only after it ended (the handler's
    thread keeps the GIL): it must then keep the fire time it was woken for, so that the next
    warm invocations, each arming a later one, do not wake it (a thread switch per invocation)."""
    dog = timeout.Watchdog()  # its own thread, in a known state
    monkeypatch.setattr(timeout, "_watchdog", dog)
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: "done", tracer_provider=provider)
    wakes = []
    notify = dog._cond.notify
    monkeypatch.setattr(dog._cond, "notify", lambda n=1: (wakes.append(n), notify(n)))

    assert handler({}, FakeContext(remaining_ms=60000)) == "done"  # starts the thread
    for _ in range(5):
        time.sleep(0.05)  # the thread runs, after the invocation that woke it has ended
        assert handler({}, FakeContext(remaining_ms=60000)) == "done"
    assert len(wakes) == 1, "%d wake-ups for 6 warm invocations (the first starts the thread)" % len(wakes)
    assert dog.thread is not None and dog.thread.is_alive() and dog.last_fired is None

    # an earlier fire time than the one it waits for still wakes it, and it fires on time
    slow = instrument_handler(lambda event, context: time.sleep(0.5) or "late", tracer_provider=provider)
    started = time.monotonic()
    assert slow({}, FakeContext(remaining_ms=300)) == "late"
    guard = dog.last_fired
    assert guard is not None and guard.fired and len(wakes) == 2
    assert 0.15 <= guard.fired_ns / 1e9 - (time.time() - (time.monotonic() - started)) < 0.3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_forked_child_starts_its_own_watchdog():
    """The fork hook clears the parent's thread (arm() checks no pid): a child's invocation fires."""
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: time.sleep(0.6), tracer_provider=provider)
    handler({}, FakeContext())  # the parent's watchdog thread runs
    assert timeout.watchdog().thread is not None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether its invocation was ended by its own watchdog
        code = 1
        try:
            handler({}, FakeContext(remaining_ms=400))
            guard = timeout.watchdog().last_fired
            thread = timeout.watchdog().thread
            if guard is not None and guard.fired and thread is not None and thread.is_alive():
                code = 0
        finally:
            os.write(write_end, bytes([code]))
            os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 1) == b"\x00"
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)


@pytest.mark.internal_error_expected
def test_a_dead_watchdog_thread_is_replaced_on_the_next_arm(monkeypatch):
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: time.sleep(0.5), tracer_provider=provider)
    dog = timeout.watchdog()
    calls = []

    def broken_next_due():  # the thread's loop raising: it ends, and says so
        calls.append(1)
        raise RuntimeError("planted")

    monkeypatch.setattr(dog, "_next_due", broken_next_due)
    with dog._cond:  # a new thread is started by the next arm
        dog._thread = None
    handler({}, FakeContext())
    for _ in range(100):
        if dog.thread is None:
            break
        time.sleep(0.01)
    assert calls and dog.thread is None
    monkeypatch.undo()
    handler({}, FakeContext(remaining_ms=300))  # fires: a new thread watched it
    assert dog.thread is not None and dog.thread.is_alive()
    assert dog.last_fired is not None and dog.last_fired.fired
