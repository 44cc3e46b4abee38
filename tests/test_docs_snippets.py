"""Every ```python block of README.md and docs/*.md runs as written.

Each block runs in its own interpreter with the environment a Lambda function has (function name,
region, fake credentials) and boto3 pointed at a moto server (``AWS_ENDPOINT_URL``), spans going
to the real Datadog test agent (``DD_TRACE_AGENT_URL``) and OTLP to a loopback collector. A block
that defines ``handler`` is invoked once, as Lambda would, with an API Gateway event. Blocks that
are fragments on purpose are preceded by ``<!-- not-runnable: reason -->`` (and must say why).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from tests.support.moto_server import REGION, client, moto_server
from tests.support.otlp_sink import OTLPSink

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUNNABLE = re.compile(r"^<!--\s*not-runnable:\s*(\S.*?)\s*-->$")


def python_blocks(path: Path) -> Iterator[Tuple[int, str, str]]:
    """``(line, code, not-runnable reason or "")`` for each ```python block of a Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    previous = ""
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            if lines[index].strip():
                previous = lines[index].strip()
            index += 1
            continue
        start = index
        index += 1
        body: List[str] = []
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        index += 1
        if match.group(1) == "python":
            reason = NOT_RUNNABLE.match(previous)
            yield start + 1, "\n".join(body) + "\n", reason.group(1) if reason else ""
        previous = ""


BLOCKS = [(path, line, code, reason) for path in DOCS for line, code, reason in python_blocks(path)]

# Runs one block as a module, then calls its `handler` (if any) the way Lambda would.
RUNNER = textwrap.dedent('''
    import json, runpy, sys, uuid

    class Context:
        function_name = "docs-fn"
        function_version = "$LATEST"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:docs-fn"
        aws_request_id = str(uuid.uuid4())
        memory_limit_in_mb = 128
        client_context = None
        identity = None
        def get_remaining_time_in_millis(self):
            return 5_000

    namespace = runpy.run_path(sys.argv[1], run_name="__main__")
    handler = namespace.get("handler")
    if callable(handler):
        event = {"version": "2.0", "routeKey": "GET /", "rawPath": "/", "rawQueryString": "",
                 "headers": {"host": "docs.execute-api.us-east-1.amazonaws.com",
                             "traceparent": "00-6b0fecdf00000000000000000000abcd-00000000000000ef-01"},
                 "requestContext": {"apiId": "docs", "stage": "$default", "requestId": "r-1",
                                    "http": {"method": "GET", "path": "/"}, "timeEpoch": 1700000000000}}
        result = handler(event, Context())
        print("HANDLER-RESULT " + json.dumps(result, default=str))
''')


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def test_blocks_are_found_and_fragments_are_rare():
    assert len(BLOCKS) >= 5
    fragments = [(p.name, line) for p, line, _, reason in BLOCKS if reason]
    assert len(fragments) <= 1, fragments


@pytest.mark.parametrize("path, line, code, reason", BLOCKS,
                         ids=["%s:%d" % (p.relative_to(ROOT), line) for p, line, _, _ in BLOCKS])
def test_snippet_runs_as_written(path, line, code, reason, aws, agent, tmp_path):
    if reason:
        pytest.skip("not runnable on purpose: " + reason)
    queue = client(aws, "sqs").create_queue(QueueName="docs-%s" % uuid.uuid4().hex[:12])["QueueUrl"]
    agent.clear(None)
    snippet = tmp_path / "snippet.py"
    snippet.write_text(code)
    runner = tmp_path / "run_snippet.py"
    runner.write_text(RUNNER)
    env: Dict[str, str] = {k: v for k, v in os.environ.items()
                           if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    with OTLPSink() as collector:
        env.update({
            "PYTHONPATH": str(ROOT),
            "AWS_ENDPOINT_URL": aws, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": "docs-fn", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "LAMBDA_TASK_ROOT": str(tmp_path),
            "DD_TRACE_AGENT_URL": agent.url, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "QUEUE_URL": queue,
        })
        proc = subprocess.run([sys.executable, str(runner), str(snippet)], cwd=str(tmp_path), env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, "%s:%d\n%s%s" % (path.name, line, proc.stdout, proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        if "HANDLER-RESULT " not in proc.stdout:
            return
        # A handler ran: its invocation reached the real agent, a child of the event's traceparent.
        traces = agent.wait_for_traces(None, 1)
        spans = [span for trace in traces for span in trace]
        assert spans, "%s:%d: no span reached the agent" % (path.name, line)
        dd_trace_ids = {span["trace_id"] for span in spans}
        if "instrument_handler" in code:  # the invocation's parent came from the event
            assert dd_trace_ids == {0xabcd}
        assert len(dd_trace_ids) == 1
        if "OTLPSpanExporter" in code:  # the collector got the same trace: Datadog's id is its low half
            otlp_ids = {s["trace_id"] for s in collector.spans()}
            assert len(otlp_ids) == 1 and {i & (2**64 - 1) for i in otlp_ids} == dd_trace_ids
    if "send_message" in code:  # the message reached the queue
        messages = client(aws, "sqs").receive_message(QueueUrl=queue, MessageAttributeNames=["All"])
        assert messages.get("Messages"), "%s:%d: nothing in the queue" % (path.name, line)
