"""SnapStart: sandboxes restored from one snapshot draw different ids and start a cold start.

Each process below plays a restored sandbox: it sets up tracing during "init", then takes the very
same ``random`` state (what a restore resumes), then lets the real Lambda runtime client run the
after-restore hooks, then serves one invocation. A test agent is not needed: log mode prints the
spans on stdout.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys

import pytest

SANDBOX = """
import json, pickle, random, sys, time
import otel_dd_lambda
from awslambdaric import lambda_runtime_hooks_runner
from opentelemetry import trace

class Ctx:
    aws_request_id = "r1"; invoked_function_arn = "arn:aws:lambda:eu-west-1:1:function:my-fn"
    def get_remaining_time_in_millis(self): return 5000

@otel_dd_lambda.instrument_handler
def handler(event, context):
    return format(trace.get_current_span().get_span_context().trace_id, "032x")

# the snapshot was taken a minute before this restore
from otel_dd_lambda.runtime import cold_start
cold_start.mark_init(time.time_ns() - 60 * 10**9)
with open(sys.argv[1], "rb") as f:
    random.setstate(pickle.load(f))  # the snapshot's memory, identical in every restored sandbox
if sys.argv[2] == "restore":
    lambda_runtime_hooks_runner.run_after_restore()
trace_id = handler({}, Ctx())
print(json.dumps({"trace_id": trace_id}))
"""


def _sandbox(state_file: str, mode: str) -> tuple[str, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    env.update({"AWS_LAMBDA_FUNCTION_NAME": "my-fn", "AWS_REGION": "eu-west-1", "DD_FLUSH_TO_LOG": "true"})
    proc = subprocess.run([sys.executable, "-c", SANDBOX, state_file, mode], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    trace_id = json.loads(lines[-1])["trace_id"]
    traces = [json.loads(line) for line in lines if line.startswith('{"traces"')]
    (span,) = [s for t in traces for chunk in t["traces"] for s in chunk if s["name"] == "aws.lambda"]
    return trace_id[16:], span  # the random half: the high half holds the time in seconds


@pytest.fixture
def snapshot_state(tmp_path) -> str:
    path = tmp_path / "random.state"
    path.write_bytes(pickle.dumps(random.Random(1234).getstate()))
    return str(path)


def test_restored_sandboxes_draw_different_ids(snapshot_state: str) -> None:
    first, _ = _sandbox(snapshot_state, "restore")
    second, _ = _sandbox(snapshot_state, "restore")
    assert first != second


def test_without_the_restore_hooks_the_ids_repeat(snapshot_state: str) -> None:
    # the hazard the hooks remove: same memory, same ids
    first, _ = _sandbox(snapshot_state, "no-restore")
    second, _ = _sandbox(snapshot_state, "no-restore")
    assert first == second


def test_first_invocation_after_restore_is_a_snap_start_cold_start(snapshot_state: str) -> None:
    _, span = _sandbox(snapshot_state, "restore")
    assert span["meta"]["cold_start"] == "true"
    assert span["meta"]["init_type"] == "snap-start"
    assert "proactive_initialization" not in span["meta"]


def test_without_the_restore_hooks_the_snapshot_age_looks_like_proactive_init(snapshot_state: str) -> None:
    _, span = _sandbox(snapshot_state, "no-restore")
    assert span["meta"]["cold_start"] == "false"
    assert span["meta"]["proactive_initialization"] == "true"
    assert "init_type" not in span["meta"]
