"""Impending timeouts and init errors under the real runtime client (``awslambdaric``) against the
Runtime API emulator, spans going to a real ddapm-test-agent.

Timeouts: the test kills the runtime process at the invocation's deadline, as Lambda does; the
invocation's "Impending Timeout" error span must already be at the agent, whether the handler
sleeps or blocks in C (a socket ``recv``, a lock wait) holding no bytecode. A handler finishing
just after the watchdog fired gets its result through unchanged and leaves exactly one span.

Init errors: the redirect's init error is posted unchanged (as the bare runtime posts it) and the
error span is at the agent when it is; the span has the names Datadog's own library
(``datadog_lambda.handler.handler``, run the same way as a reference peer) gives it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Dict, List, Optional

import pytest

from tests.support.agent import TestAgent
from tests.support.functions import INIT_FAILURES, write_task_root
from tests.support.lambda_runtime import LambdaProcess, Result, RuntimeAPI

REDIRECT = "otel_dd_lambda.handler.handler"

USER_CODE = {
    "overrun.py": '''
        import socket
        import threading
        import time


        def handler(event, context):
            mode = event["mode"]
            if mode == "sleep":
                time.sleep(event["seconds"])
            elif mode == "recv":
                left, right = socket.socketpair()
                left.recv(1)  # nobody writes: blocks in the kernel until the process dies
            elif mode == "lock":
                threading.Event().wait()  # a lock acquire in C, forever
            return {"mode": mode, "left_ms": context.get_remaining_time_in_millis() > 0}
    ''',
    "plain.py": '''
        def handler(event, context):
            return event
    ''',
    **INIT_FAILURES,
}


@pytest.fixture(scope="module")
def agent(sessionless_agent: TestAgent) -> TestAgent:
    return sessionless_agent


@pytest.fixture(scope="module")
def task_root(tmp_path_factory) -> str:
    return write_task_root(tmp_path_factory.mktemp("task"), USER_CODE)


def spans(agent: TestAgent) -> List[Dict[str, Any]]:
    return [span for chunk in agent.traces(None) for span in chunk]


def invocation_spans(agent: TestAgent, request_id: str) -> List[Dict[str, Any]]:
    return [s for s in spans(agent) if s["name"] == "aws.lambda" and s["meta"].get("request_id") == request_id]


def wait_for(agent: TestAgent, request_id: str, timeout: float = 3.0) -> List[Dict[str, Any]]:
    """The invocation's spans at the agent. The process is dead by now: anything found was sent
    before the kill (the wait only covers the agent's own processing)."""
    found: List[Dict[str, Any]] = []
    for _ in range(int(timeout / 0.05)):
        found = invocation_spans(agent, request_id)
        if found:
            break
        time.sleep(0.05)
    return found


def assert_impending_timeout(span: Dict[str, Any]) -> None:
    assert span["error"] == 1
    assert span["meta"]["error.type"] == "Impending Timeout"
    assert span["meta"]["error.message"] == "Datadog detected an Impending Timeout"
    assert span["type"] == "serverless" and span["resource"] == "my-function"


@pytest.mark.parametrize("mode", ["sleep", "recv", "lock"])
def test_killed_at_the_deadline_the_error_span_is_at_the_agent(agent, task_root, mode):
    env = {"DD_TRACE_AGENT_URL": agent.url, "DD_LAMBDA_HANDLER": "overrun.handler"}
    with RuntimeAPI() as api, LambdaProcess(api, task_root, REDIRECT, env) as process:
        warm = api.call({"mode": "sleep", "seconds": 0}, timeout=15)  # init done, waiting on /next
        assert warm.kind == "response", (warm, process.stderr[-2000:])
        request_id = "timeout-%s-%s" % (mode, uuid.uuid4().hex[:8])
        api.invoke({"mode": mode, "seconds": 30}, request_id=request_id, timeout_ms=1000)
        deadline_ms = api.invocations[request_id].deadline_ms
        while time.time() * 1000 < deadline_ms:  # Lambda stops the sandbox at the deadline
            time.sleep(0.005)
        process.process.kill()
        assert process.process.wait(5) == -9
        with pytest.raises(AssertionError):
            api.result(request_id, timeout=0.2)  # the handler never answered
    found = wait_for(agent, request_id)
    assert len(found) == 1, process.stderr[-3000:]
    span = found[0]
    assert_impending_timeout(span)
    end_ns = span["start"] + span["duration"]
    # ended DD_APM_FLUSH_DEADLINE_MILLISECONDS (100) before the deadline, and before the kill
    assert deadline_ms * 1_000_000 - 102_000_000 <= end_ns <= deadline_ms * 1_000_000


def test_handler_finishing_after_the_watchdog_fired(agent, task_root):
    def observe(result: Result) -> Optional[int]:
        return len(invocation_spans(agent, result.request_id or ""))

    env = {"DD_TRACE_AGENT_URL": agent.url, "DD_LAMBDA_HANDLER": "overrun.handler",
           "DD_APM_FLUSH_DEADLINE_MILLISECONDS": "500"}
    with RuntimeAPI(on_result=observe) as api, LambdaProcess(api, task_root, REDIRECT, env) as process:
        assert api.call({"mode": "sleep", "seconds": 0}, timeout=15).kind == "response"
        late = "late-" + uuid.uuid4().hex[:8]
        # fires at 500 ms; the handler returns at 750 ms, before the 1000 ms deadline
        result = api.call({"mode": "sleep", "seconds": 0.75}, request_id=late, timeout_ms=1000, timeout=10)
        after = "after-" + uuid.uuid4().hex[:8]
        next_result = api.call({"mode": "sleep", "seconds": 0}, request_id=after, timeout=10)
        process.stop()
    assert result.kind == "response", (result, process.stderr[-2000:])
    assert result.json == {"mode": "sleep", "left_ms": True}  # the handler's result, unchanged
    assert result.observed == 1  # the watchdog's span was already at the agent
    time.sleep(0.3)
    [span] = invocation_spans(agent, late)  # the normal end added no second span
    assert_impending_timeout(span)
    assert span["duration"] < 750_000_000
    # the process goes on: the next invocation is traced normally
    assert next_result.kind == "response" and next_result.observed == 1
    [normal] = invocation_spans(agent, after)
    assert normal["error"] == 0 and "error.type" not in normal["meta"]


INIT_FAILURES = [
    ("raises_on_import.handler", "RuntimeError", "RuntimeError"),
    ("imports_missing.handler", "Runtime.ImportModuleError", "ModuleNotFoundError"),
    ("missing_module.handler", "Runtime.ImportModuleError", "ModuleNotFoundError"),
    ("syntax_error.handler", "Runtime.UserCodeSyntaxError", "SyntaxError"),
    ("plain.no_such_function", "Runtime.HandlerNotFound", "AttributeError"),
]


def _init_error(api: RuntimeAPI, task_root: str, handler: str, env: Dict[str, str]) -> Result:
    with LambdaProcess(api, task_root, handler, env) as process:
        result = api.init_error(timeout=20)
        assert process.wait(20) == 1
        return result


def _spans_of(agent: TestAgent, resource: str) -> List[Dict[str, Any]]:
    return [s for s in spans(agent) if s["resource"] == resource and s["service"] == "aws.lambda"]


@pytest.mark.parametrize("user_handler,runtime_type,span_type", INIT_FAILURES)
def test_init_error_span_at_the_agent_before_the_error_is_posted(agent, task_root, user_handler,
                                                                 runtime_type, span_type):
    module = user_handler.rpartition(".")[0]
    with RuntimeAPI() as api:
        bare = _init_error(api, task_root, user_handler, {})
    agent.clear(None)
    with RuntimeAPI(on_result=lambda result: _spans_of(agent, module)) as api:
        ours = _init_error(api, task_root, REDIRECT, {"DD_LAMBDA_HANDLER": user_handler,
                                                     "DD_TRACE_AGENT_URL": agent.url})
    # the init error, unchanged by the span
    assert bare.json["errorType"] == runtime_type
    assert (ours.json["errorType"], ours.json["errorMessage"]) == (bare.json["errorType"], bare.json["errorMessage"])
    # the span was at the agent when the runtime posted the init error
    [span] = ours.observed
    assert span["error"] == 1 and span["meta"]["error.type"] == span_type
    # Datadog's own library, run the same way, records the same failure under the same names
    agent.clear(None)
    with RuntimeAPI() as api:
        _init_error(api, task_root, "datadog_lambda.handler.handler", {"DD_LAMBDA_HANDLER": user_handler,
                                                                       "DD_TRACE_AGENT_URL": agent.url})
    reference: List[Dict[str, Any]] = []
    for _ in range(100):  # ddtrace sends it at exit
        reference = _spans_of(agent, module)
        if reference:
            break
        time.sleep(0.05)
    [want] = reference
    for field in ("name", "service", "resource", "type", "error"):
        assert span[field] == want[field], field
    for key in ("error.type", "status", "resource_names", "operation_name"):
        assert span["meta"][key] == want["meta"][key], key
    assert span["metrics"]["error.status"] == want["metrics"]["error.status"] == 500
    if span_type != "AttributeError":  # ours names the missing function in Lambda's words
        assert span["meta"]["error.message"] == want["meta"]["error.message"]
        assert span["meta"]["error.stack"].splitlines()[-1] == want["meta"]["error.stack"].splitlines()[-1]
    else:
        assert span["meta"]["error.message"] == "Handler 'no_such_function' missing on module 'plain'"
