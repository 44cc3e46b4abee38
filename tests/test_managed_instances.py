"""Lambda Managed Instances: concurrent requests served by forked worker processes.

With ``AWS_LAMBDA_MAX_CONCURRENCY`` set, the real runtime interface client (``awslambdaric``, run
here against the Runtime API emulator) forks that many workers (``multiprocessing``, "fork"
context) before any of them loads the handler; each worker then runs the init (imports the
handler) and serves one request at a time. Logs are Lambda's JSON format, always, there.

Two parents: the bare runtime (our package first imported in each worker, as Lambda does it), and
one where OpenTelemetry was already set up in the parent before the fork (a ``sitecustomize``, as
auto-instrumentation does), which exported a span over a keep-alive connection to the agent and
left another span unexported: the workers must not write on the parent's socket nor export the
parent's queued span (it would arrive once per worker, the same span id three times).

For both: every worker's spans reach the real ddapm-test-agent; no span id repeats; each worker's
first invocation is its cold start and the others are not (datadog_lambda's rule, per process);
no import spans (datadog_lambda skips cold start tracing for this initialization type); each
worker runs its own impending-timeout watchdog thread; the JSON log lines carry the ``dd.trace_id``
and ``dd.span_id`` of their invocation's span.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from collections import defaultdict
from typing import Any, Dict, List

import pytest

from tests.support.agent import TestAgent, dd_trace_id
from tests.support.lambda_runtime import ROOT, LambdaProcess, RuntimeAPI

WORKERS = 3

APP = '''
    import logging
    import os
    import threading
    import time

    import otel_dd_lambda

    logger = logging.getLogger("user")


    @otel_dd_lambda.instrument_handler
    def handler(event, context):
        logger.info("serving %s", context.aws_request_id)
        time.sleep(event["sleep"])  # keeps this worker busy: the next requests go to the others
        watchdogs = [t.native_id for t in threading.enumerate() if t.name == "otel-dd-lambda-timeout"]
        return {"pid": os.getpid(), "ppid": os.getppid(), "watchdogs": watchdogs}
'''

# OpenTelemetry set up in the runtime's parent process before it forks its workers.
PRELOAD = '''
    import otel_dd_lambda
    from opentelemetry import trace

    provider = otel_dd_lambda.configure()
    tracer = trace.get_tracer("preload")
    tracer.start_span("runtime.boot").end()
    provider.force_flush(5000)  # sent: the exporter keeps its connection to the agent open
    tracer.start_span("runtime.preinit").end()  # queued in the parent when it forks
'''


@pytest.fixture(scope="module")
def agent(sessionless_agent: TestAgent) -> TestAgent:
    return sessionless_agent


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> Dict[str, str]:
    task = tmp_path_factory.mktemp("task")
    (task / "lmi_app.py").write_text(textwrap.dedent(APP).lstrip())
    preload = tmp_path_factory.mktemp("preload")
    (preload / "sitecustomize.py").write_text(textwrap.dedent(PRELOAD).lstrip())
    return {"task": str(task), "preload": str(preload)}


def _all_spans(agent: TestAgent) -> List[Dict[str, Any]]:
    return [span for chunk in agent.traces(None) for span in chunk]


@pytest.mark.parametrize("preloaded", [False, True], ids=["bare-parent", "otel-in-parent"])
def test_forked_workers(agent, roots, preloaded):
    env = {"DD_TRACE_AGENT_URL": agent.url, "AWS_LAMBDA_MAX_CONCURRENCY": str(WORKERS),
           "AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances",
           "AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO",
           "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13"}
    tag = "pre" if preloaded else "bare"
    with RuntimeAPI() as api:
        process = LambdaProcess(api, roots["task"], "lmi_app.handler",
                                dict(env, PYTHONPATH=_pythonpath(roots, preloaded)), process_group=True)
        with process:
            deadline = time.monotonic() + 30
            while api.next_calls < WORKERS:  # every worker has loaded the handler and is polling
                assert time.monotonic() < deadline and process.process.poll() is None, process.stderr[-3000:]
                time.sleep(0.05)
            ids = [api.invoke({"sleep": 0.4}, request_id="%s-%d" % (tag, i)) for i in range(2 * WORKERS)]
            try:
                results = {rid: api.result(rid, timeout=30) for rid in ids}
            except AssertionError:
                raise AssertionError(process.stdout[-3000:] + process.stderr[-3000:]) from None
            process.stop()
            stdout = process.stdout

    outcomes = {rid: r.json for rid, r in results.items()}
    assert all(r.kind == "response" for r in results.values()), results
    pids = {o["pid"] for o in outcomes.values()}
    assert len(pids) == WORKERS  # the first WORKERS requests went to the WORKERS waiting workers
    assert len({o["ppid"] for o in outcomes.values()}) == 1  # forked by one runtime process
    # one watchdog thread per worker, its own (thread ids are system-wide)
    watchdogs = {o["pid"]: tuple(o["watchdogs"]) for o in outcomes.values()}
    assert all(len(w) == 1 for w in watchdogs.values()) and len(set(watchdogs.values())) == WORKERS

    spans = _all_spans(agent)
    invocations = {s["meta"]["request_id"]: s for s in spans
                   if s["name"] == "aws.lambda" and s["meta"].get("request_id", "").startswith(tag + "-")}
    assert set(invocations) == set(ids)  # every worker's spans reached the agent
    # no span id twice: the whole agent session (both parents, every worker, the parent's spans)
    span_ids = [s["span_id"] for s in spans]
    assert len(span_ids) == len(set(span_ids))
    assert len({s["trace_id"] for s in invocations.values()}) == len(ids)

    # datadog_lambda's cold start rule, per process: each worker's first invocation only
    by_pid: Dict[int, List[Dict[str, Any]]] = defaultdict(list)
    for rid, span in invocations.items():
        by_pid[outcomes[rid]["pid"]].append(span)
    for worker_spans in by_pid.values():
        worker_spans.sort(key=lambda s: s["start"])
        assert [s["meta"]["cold_start"] for s in worker_spans] == ["true"] + ["false"] * (len(worker_spans) - 1)
        assert all("proactive_initialization" not in s["meta"] for s in worker_spans)
    # no cold start tracing in managed instances mode (as datadog_lambda)
    assert not [s for s in spans if s["name"] == "aws.lambda.load" or s["name"].startswith("import ")]

    boot = [s for s in spans if s["resource"] == "runtime.boot"]
    preinit = [s for s in spans if s["resource"] == "runtime.preinit"]
    if preloaded:
        assert len(boot) == 1
        assert preinit == []  # the parent's queued span: not exported by a worker (nor three times)

    # JSON logs, with the ids of the invocation's span
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    served = {r["requestId"]: r for r in records if r.get("logger") == "user"}
    assert set(served) == set(ids), stdout[-3000:]
    for rid, record in served.items():
        assert record["message"] == "serving " + rid
        assert record["dd.trace_id"] == dd_trace_id(invocations[rid])
        assert record["dd.span_id"] == str(invocations[rid]["span_id"])


def _pythonpath(roots: Dict[str, str], preloaded: bool) -> str:
    parts = ([roots["preload"]] if preloaded else []) + [roots["task"], ROOT]
    return os.pathsep.join(parts)


def test_initialization_type_turns_cold_start_tracing_off_only_there():
    from otel_dd_lambda import config

    managed = config.lambda_settings({"AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances"})
    assert managed.managed_instances and not managed.cold_start_tracing
    for init_type in ("on-demand", "provisioned-concurrency", "snap-start", ""):
        settings = config.lambda_settings({"AWS_LAMBDA_INITIALIZATION_TYPE": init_type})
        assert settings.cold_start_tracing and not settings.managed_instances
