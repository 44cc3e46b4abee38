"""``otel-dd-lambda view`` (and every command's ``-h``, and ``inspect``'s built ARNs), run as the
real CLI in subprocesses, on real log-mode output: a handler wrapped with ``instrument_handler``
runs in its own process with ``DD_FLUSH_TO_LOG=true`` and tells us (on stderr) the ids it saw."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_INPUT = 6 * 1024 * 1024
PREFIX = "otel-dd-lambda view: "
EVIL = "\x1b]0;pwned\x07\x1b[2J\u202e\x9b31m\u2028\u2066x\x7f"
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

HANDLER = textwrap.dedent('''
    import json, sys
    from opentelemetry import trace
    import otel_dd_lambda

    class Context:
        function_name = "view-fn"
        function_version = "$LATEST"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:view-fn"
        aws_request_id = "11111111-2222-3333-4444-555555555555"
        memory_limit_in_mb = 128
        client_context = None
        identity = None
        def get_remaining_time_in_millis(self):
            return 10_000

    LINKED = trace.SpanContext(0x6b0fecdf00000000aaaaaaaaaaaaaaaa, 0x00000000000000bb, True)

    @otel_dd_lambda.instrument_handler
    def handler(event, context):
        seen = {"invocation": trace.get_current_span().get_span_context().span_id}
        link = trace.Link(LINKED, {"why": "batch"})
        with trace.get_tracer("app").start_as_current_span("child", links=[link]) as child:
            seen["child"] = child.get_span_context().span_id
        seen["trace"] = trace.get_current_span().get_span_context().trace_id
        print(json.dumps(seen), file=sys.stderr)
        if event.get("fail"):
            raise ValueError("boom " + event.get("text", ""))
        return "ok"

    for event in json.loads(sys.argv[1]):
        try:
            handler(event, Context())
        except ValueError:
            pass
''')


def _env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def log_mode_output(tmp_path: Path, events: List[Dict[str, Any]]) -> (str, List[Dict[str, int]]):
    """What a wrapped handler prints in log mode for ``events``, and the ids it saw itself."""
    script = tmp_path / "app.py"
    script.write_text(HANDLER)
    env = _env()
    env.update(DD_FLUSH_TO_LOG="true", AWS_LAMBDA_FUNCTION_NAME="view-fn", AWS_REGION="us-east-1",
               DD_COLD_START_TRACING="false", DD_TRACE_AWS_LAMBDA_ENABLED="false")
    proc = subprocess.run([sys.executable, str(script), json.dumps(events)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert len(seen) == len(events) and '{"traces"' in proc.stdout
    return proc.stdout, seen


def view(*args: str, stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_dd_lambda.cli", "view", *args], input=stdin,
                          capture_output=True, env=_env(), timeout=timeout)


def view_json(path: Path) -> Dict[str, Any]:
    proc = view(str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_one_line_failure(proc: subprocess.CompletedProcess, reason: str) -> None:
    err = proc.stderr.decode("utf-8")
    assert proc.returncode == 2, err
    assert proc.stdout == b""
    assert err.count("\n") == 1 and err.startswith(PREFIX + "cannot read ") and reason in err, err
    assert "Traceback" not in err and not RAW_CONTROL.search(err)


@pytest.fixture(scope="module")
def real_log(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("viewlog")
    return log_mode_output(tmp_path, [{}, {"fail": True}])


# ------------------------------------------------------------------ real output


def test_real_log_mode_output_as_a_tree_with_every_id_form(real_log, tmp_path):
    out, seen = real_log
    path = tmp_path / "log.txt"
    path.write_text(out)
    result = view_json(path)
    assert result["problems"] == []
    assert len(result["traces"]) == 2
    for trace, ids in zip(result["traces"], seen):
        assert trace["trace_id"] == "%032x" % ids["trace"]
        assert trace["datadog_trace_id"] == str(ids["trace"] & (2**64 - 1))
        assert trace["datadog_tid"] == "%016x" % (ids["trace"] >> 64)
        hex_id = "%032x" % ids["trace"]
        assert trace["xray_trace_id"] == "1-%s-%s" % (hex_id[:8], hex_id[8:])
        spans = {s["span_id"]: s for s in trace["spans"]}
        invocation, child = spans["%016x" % ids["invocation"]], spans["%016x" % ids["child"]]
        assert (invocation["name"], invocation["depth"], invocation["parent_span_id"]) == ("aws.lambda", 0, None)
        assert (child["depth"], child["parent_span_id"]) == (1, invocation["span_id"])
        assert child["datadog_span_id"] == str(ids["child"])
        assert child["traceparent"] == "00-%s-%016x-01" % (hex_id, ids["child"])
        assert child["xray"] == "Root=%s;Parent=%016x;Sampled=1" % (trace["xray_trace_id"], ids["child"])
        assert 0 <= child["offset_ns"] and child["offset_ns"] + child["duration_ns"] <= trace["duration_ns"]
        [link] = child["links"]
        assert (link["trace_id"], link["span"]["span_id"]) == ("6b0fecdf00000000aaaaaaaaaaaaaaaa", "00000000000000bb")
        assert link["datadog_trace_id"] == str(0xaaaaaaaaaaaaaaaa) and link["attributes"] == {"why": "batch"}
    failed = result["traces"][1]["spans"][0]
    assert failed["error"] and failed["error_type"] == "ValueError" and "boom" in failed["error_message"]
    assert not result["traces"][0]["spans"][0]["error"]

    text = view(str(path))
    assert text.returncode == 0 and text.stderr == b""
    lines = text.stdout.decode().splitlines()
    assert sum(1 for line in lines if line.startswith("trace ")) == 2
    assert any(line.lstrip().startswith("! aws.lambda view-fn") for line in lines)
    assert any(line.strip() == "ERROR ValueError: boom" for line in lines)
    assert any(line.strip().startswith("link        trace 6b0fecdf00000000aaaaaaaaaaaaaaaa") for line in lines)
    # the waterfall: each span row carries its duration and a bar inside the axis
    rows = [line for line in lines if re.search(r"\|[ =]{40}\|", line)]
    assert len(rows) == 4 and all(re.search(r"\d ms \|", row) for row in rows)
    assert "traceparent 00-%032x-%016x-01" % (seen[0]["trace"], seen[0]["child"]) in text.stdout.decode()


def _cloudwatch_variants(out: str) -> Dict[str, str]:
    trace_lines = [line for line in out.splitlines() if line.startswith('{"traces"')]
    rid = "11111111-2222-3333-4444-555555555555"
    stream = "2026/05/01/[$LATEST]0123456789abcdef0123456789abcdef"
    noise = ["START RequestId: %s Version: $LATEST" % rid, "END RequestId: %s" % rid,
             "REPORT RequestId: %s\tDuration: 3.21 ms\tBilled Duration: 4 ms" % rid, "not json {", "{}",
             '{"message": "no traces here"}']
    variants = {
        "cloudwatch": ["2026-05-01T12:00:0%d.000Z\t%s\t%s" % (i, rid, line) for i, line in enumerate(trace_lines)],
        "json-log-format": [json.dumps({"timestamp": "2026-05-01T12:00:00Z", "level": "INFO", "message": line,
                                        "requestId": rid}) for line in trace_lines],
        "json-log-object": [json.dumps({"time": "2026-05-01T12:00:00Z", "type": "platform",
                                        "message": json.loads(line)}) for line in trace_lines],
        "aws-logs-tail": ["2026-05-01T12:00:00.000000+00:00 %s %s" % (stream, line) for line in trace_lines],
        "aws-logs-tail-json": ["2026-05-01T12:00:00.000000+00:00 %s %s" % (stream, json.dumps(
            {"timestamp": "x", "level": "INFO", "message": line})) for line in trace_lines],
        "sam-logs": ["%s 2026-05-01T12:00:00.000000+00:00 %s" % (stream, line) for line in trace_lines],
        "s3-export": ["2026-05-01T12:00:00.000Z %s" % line for line in trace_lines],
    }
    return {name: "\n".join(noise[:3] + [x for line in lines for x in (line, noise[3], noise[4], noise[5])]) + "\n"
            for name, lines in variants.items()}


def test_cloudwatch_and_cli_prefixes_give_the_same_traces(real_log, tmp_path):
    out, _ = real_log
    plain = tmp_path / "plain.txt"
    plain.write_text(out)
    expected = view_json(plain)["traces"]
    for name, text in _cloudwatch_variants(out).items():
        path = tmp_path / (name + ".log")
        path.write_text(text)
        got = view_json(path)
        for trace in got["traces"]:
            for span in trace["spans"]:
                span.pop("line")
        for trace in expected:
            for span in trace["spans"]:
                span.pop("line", None)
        assert got == {"traces": expected, "problems": []}, name


def test_standard_input(real_log):
    out, seen = real_log
    proc = view("-", "--no-ids", stdin=out.encode())
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "trace %032x" % seen[0]["trace"] in text and "traceparent" not in text


def test_truncated_line_keeps_its_complete_spans(real_log, tmp_path):
    out, seen = real_log
    line = [x for x in out.splitlines() if x.startswith('{"traces"')][0]
    spans = json.loads(line)["traces"][0]
    assert len(spans) == 2
    second_at = line.index('"span_id":"%s"' % spans[1]["span_id"])
    cut = line[: second_at + 200]  # in the middle of the second span
    path = tmp_path / "cut.log"
    path.write_text("2026-05-01T12:00:00.000Z\trid\t" + cut + "\n")
    proc = view(str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    [trace] = json.loads(proc.stdout)["traces"]
    assert [s["span_id"] for s in trace["spans"]] == [spans[0]["span_id"].lower()]
    err = proc.stderr.decode()
    assert err == PREFIX + "warning: line 1: truncated or malformed, 1 complete span(s) kept\n"

    path.write_text(line[:30] + "\n")  # nothing complete left
    assert_one_line_failure(view(str(path)), "no log-mode trace lines")


# ------------------------------------------------------------------ hostile input


def test_unreadable_inputs_are_one_line_errors(tmp_path):
    assert_one_line_failure(view("/dev/zero", timeout=20), "not a regular file")
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    assert_one_line_failure(view(str(fifo), timeout=20), "not a regular file")
    assert_one_line_failure(view(str(tmp_path)), "not a regular file")
    assert_one_line_failure(view(str(tmp_path / "missing" / ("x" + EVIL))), "No such file")
    big = tmp_path / "big.log"
    with open(big, "wb") as handle:
        handle.truncate(MAX_INPUT + 1)
    assert_one_line_failure(view(str(big)), "larger than %d bytes" % MAX_INPUT)
    assert_one_line_failure(view("-", stdin=b"x" * (MAX_INPUT + 1)), "larger than")
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert_one_line_failure(view(str(empty)), "no log-mode trace lines")
    deep = tmp_path / "deep.log"
    deep.write_text('{"traces": ' + "[" * 200_000 + "\n")
    assert_one_line_failure(view(str(deep)), "nested too deeply")


def _span(span_id: int, parent: int, name: str = "op", start: int = 1_000, **extra: Any) -> Dict[str, Any]:
    span = {"trace_id": "00000000000000AB", "span_id": "%016X" % span_id, "parent_id": "%016X" % parent,
            "start": start, "duration": 10, "error": 0, "name": name, "service": "svc", "resource": name,
            "type": "custom", "meta": {}, "metrics": {}}
    span.update(extra)
    return span


def test_control_characters_are_escaped(tmp_path):
    span = _span(1, 0, name="n" + EVIL, meta={"error.msg": "m" + EVIL, "error.type": EVIL}, error=1)
    path = tmp_path / "evil.log"
    path.write_bytes(json.dumps({"traces": [[span]]}, ensure_ascii=False).encode() + b"\n\xff\xfe broken\n")
    for args in ((), ("--json",)):
        proc = view(str(path), *args)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout.decode()
        assert not RAW_CONTROL.search(out)
    assert "\\x1b]0;pwned\\x07" in view(str(path)).stdout.decode()


def test_cycles_deep_chains_and_bad_spans(tmp_path):
    depth = 20_000  # far deeper than Python's recursion limit
    chain = [_span(1, 0, start=0)] + [_span(i, i - 1, start=i) for i in range(2, depth + 1)]
    cycle = [_span(0x10_0000 + 1, 0x10_0000 + 2), _span(0x10_0000 + 2, 0x10_0000 + 1)]
    bad = [{"trace_id": "zz", "span_id": 1}, {"trace_id": "00000000000000AB", "span_id": "0" * 16}, "x", None,
           _span(0x20_0000, 0, duration="1", start=None, meta=[1], metrics={"a": "b"})]
    path = tmp_path / "odd.log"
    path.write_text(json.dumps({"traces": [chain + cycle + bad]}) + "\n")
    proc = view(str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    [trace] = json.loads(proc.stdout)["traces"]
    depths = {s["span_id"]: s["depth"] for s in trace["spans"]}
    assert len(depths) == depth + 3  # every valid span once, the cycle broken
    assert depths["%016x" % depth] == depth - 1
    assert depths["%016x" % 0x10_0001] + depths["%016x" % 0x10_0002] == 1
    assert "4 span(s) without valid ids skipped" in proc.stderr.decode()
    text = view(str(path), "--no-ids")
    assert text.returncode == 0 and "(depth 19999)" in text.stdout.decode()


# ------------------------------------------------------------------ the other commands


@pytest.mark.parametrize("command, arguments", [
    ("convert", ["value", "--tracestate", "--json"]),
    ("inspect", ["event", "--json", "--function-arn"]),
    ("view", ["FILE", "--json", "--no-ids"]),
    ("demo", ["--agent-url", "--show-payload", "--summary"]),
    ("exec-wrapper-path", ["--root"]),
    ("layer", ["--python", "--arch", "--out", "--source"]),
])
def test_every_command_help_shows_its_own_arguments(command, arguments):
    proc = subprocess.run([sys.executable, "-m", "otel_dd_lambda.cli", command, "-h"], capture_output=True,
                          text=True, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: otel-dd-lambda %s " % command)
    for argument in arguments:
        assert argument in proc.stdout, (command, argument)


def test_inspect_without_a_lambda_context_prints_no_malformed_arn(tmp_path):
    event = {"version": "2.0", "routeKey": "GET /", "rawPath": "/", "headers": {"host": "x"},
             "requestContext": {"apiId": "abc", "stage": "$default", "requestId": "r", "http": {"method": "GET"}}}
    path = tmp_path / "api.json"
    path.write_text(json.dumps(event))

    def inspect(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "otel_dd_lambda.cli", "inspect", str(path), *args],
                              capture_output=True, text=True, env=_env(), timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    bare = inspect()
    assert "arn:" not in bare and "--function-arn" in bare
    report = json.loads(inspect("--json"))
    assert "function_trigger.event_source_arn" not in report["trigger_tags"] and report["notes"]
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:api"
    given = json.loads(inspect("--json", "--function-arn", arn))
    built = given["trigger_tags"]["function_trigger.event_source_arn"]
    assert built == "arn:aws:apigateway:eu-west-1::/restapis/abc/stages/$default"
    assert given["notes"] == []
