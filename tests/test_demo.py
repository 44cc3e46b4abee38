"""The demo end to end, as a user runs it: one trace across the three hops."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_runs_end_to_end():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    proc = subprocess.run([sys.executable, "-m", "otel_dd_lambda.cli", "demo", "--summary", "--show-payload"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    summary = json.loads([line for line in lines if line.startswith("SUMMARY ")][-1][len("SUMMARY "):])
    spans = summary["spans"]
    assert len({s["trace_id"] for s in spans}) == 1
    by_id = {s["span_id"]: s for s in spans}
    invocations = {s["name"]: s for s in spans if s["invocation"]}
    assert set(invocations) == {"demo-api", "demo-worker", "demo-notifier"}

    def ancestors(span):
        chain = []
        while span["parent_id"] is not None:
            span = by_id[span["parent_id"]]
            chain.append(span["name"])
        return chain

    assert ancestors(invocations["demo-notifier"]) == ["aws.eventbridge", "demo-worker", "aws.sqs", "demo-api", "aws.httpapi"]
    assert ancestors(invocations["demo-worker"])[:2] == ["aws.sqs", "demo-api"]
    # the printed tree shows every id form of each span
    for s in spans:
        assert "traceparent %s" % s["traceparent"] in proc.stdout
        assert "x-ray       %s" % s["xray"] in proc.stdout
    # and the Datadog exporter's log-mode lines carry the same Datadog ids
    exported = [sp for line in lines if line.startswith('{"traces"') for chunk in json.loads(line)["traces"] for sp in chunk]
    assert {sp["name"] for sp in exported} >= {"aws.lambda", "aws.sqs", "aws.eventbridge", "aws.httpapi"}
    assert len(exported) == len(spans)
    dd_trace = int(spans[0]["dd_trace_id"])
    for sp in exported:
        trace_id = sp["trace_id"]
        assert (int(trace_id, 16) if isinstance(trace_id, str) else trace_id) == dd_trace


def test_demo_without_its_extra_says_what_to_install(tmp_path):
    """An install with the package's own dependencies but not the `demo` extra: one line, exit 2."""
    import sysconfig
    from pathlib import Path

    site = Path(sysconfig.get_paths()["purelib"])
    without = tmp_path / "site"
    without.mkdir()
    for entry in site.iterdir():  # everything the venv has, minus moto (code and metadata)
        if not entry.name.lower().startswith("moto"):
            (without / entry.name).symlink_to(entry)
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(without)])
    # -S: no site-packages of the venv itself, so the directory above is all that is installed
    proc = subprocess.run([sys.executable, "-S", "-m", "otel_dd_lambda.cli", "demo"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "moto is not installed" in proc.stderr and "pip install 'otel-dd-lambda[demo]'" in proc.stderr
