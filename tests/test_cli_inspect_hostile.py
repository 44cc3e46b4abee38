"""``otel-dd-lambda inspect`` on hostile files, run as the real CLI in a subprocess: every failure
is one line on stderr and exit code 2, nothing blocks, and no control character from the event
reaches the terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "otel-dd-lambda inspect: cannot read "
MAX_INPUT = 6 * 1024 * 1024
EVIL = "\x1b]0;pwned\x07\x1b[2J\u202e\x9b31m\u2028\u2066x\x7f\x00"
# what must never reach the terminal: C0 (but the newline), DEL, C1, bidi and line separators
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def inspect(*args: str, stdin: bytes = b"", timeout: float = 30) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_", "_X_AMZN"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "otel_dd_lambda.cli", "inspect", *args], input=stdin,
                          capture_output=True, env=env, timeout=timeout)


def assert_one_line_failure(proc: subprocess.CompletedProcess, reason: str) -> None:
    err = proc.stderr.decode("utf-8")
    assert proc.returncode == 2, err
    assert proc.stdout == b""
    assert err.count("\n") == 1 and err.startswith(PREFIX) and reason in err, err
    assert "Traceback" not in err and not RAW_CONTROL.search(err)


def test_deep_nesting(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"a":' * 200_000)
    assert_one_line_failure(inspect(str(path)), "nested too deeply")


def test_dev_zero_is_refused_without_reading():
    assert_one_line_failure(inspect("/dev/zero", timeout=20), "not a regular file")


def test_fifo_does_not_hang(tmp_path):
    fifo = tmp_path / "event.fifo"
    os.mkfifo(fifo)  # no writer ever opens it: opening it for reading would block forever
    assert_one_line_failure(inspect(str(fifo), timeout=20), "not a regular file")


def test_directory_and_missing_file(tmp_path):
    assert_one_line_failure(inspect(str(tmp_path)), "not a regular file")
    assert_one_line_failure(inspect(str(tmp_path / "missing.json")), "No such file")


def test_seven_megabyte_file(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b'{"pad": "' + b"x" * (7 * 1024 * 1024) + b'"}')
    assert_one_line_failure(inspect(str(path)), "larger than %d bytes" % MAX_INPUT)


def test_standard_input_is_bounded_too():
    assert_one_line_failure(inspect("-", stdin=b"\0" * (7 * 1024 * 1024)), "larger than")


def test_exactly_the_limit_is_read(tmp_path):
    body = json.dumps({"detail": {"_datadog": {"x-datadog-trace-id": "1", "x-datadog-parent-id": "2"}},
                       "detail-type": "t", "source": "s"}).encode()
    path = tmp_path / "limit.json"
    path.write_bytes(body + b" " * (MAX_INPUT - len(body)))
    proc = inspect("--json", str(path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["parent"]["datadog"]["trace_id"] == "1"


@pytest.mark.parametrize("content,reason", [
    (b'{"a": "\xff\xfe\xfd"}', "not valid UTF-8"),
    (b"\xc3\x28", "not valid UTF-8"),
    (b"", "not JSON"),
    (b"{not json\n\x1b[2J", "not JSON"),
])
def test_unreadable_content(tmp_path, content, reason):
    path = tmp_path / "e.json"
    path.write_bytes(content)
    assert_one_line_failure(inspect(str(path)), reason)


def test_a_file_name_with_escapes_is_escaped_in_the_error(tmp_path):
    proc = inspect(str(tmp_path / ("\x1b[2J\u202eevil.json")))
    assert_one_line_failure(proc, "No such file")
    assert "\\x1b[2J\\u202eevil.json" in proc.stderr.decode()


def _evil_event() -> str:
    dd = json.dumps({"x-datadog-trace-id": "1", "x-datadog-parent-id": "2", "x-datadog-origin": EVIL,
                     "x-datadog-tags": "_dd.p.x=" + EVIL})
    return json.dumps({"Records": [{"eventSource": "aws:sqs", "eventSourceARN": "arn:" + EVIL + "\ud800",
                                    "messageAttributes": {"_datadog": {"dataType": "String", "stringValue": dd}}}]})


@pytest.mark.parametrize("mode", [[], ["--json"]])
def test_escape_sequences_never_reach_the_terminal(tmp_path, mode: List[str]):
    path = tmp_path / "evil.json"
    path.write_text(_evil_event())
    proc = inspect(*mode, str(path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode("utf-8")  # also: no lone surrogate made it out
    assert not RAW_CONTROL.search(out), ascii(RAW_CONTROL.search(out).group())
    shown = r"arn:\x1b]0;pwned\x07\x1b[2J\u202e\x9b31m\u2028\u2066x\x7f\x00\ud800"
    if mode:
        shown = json.dumps("arn:" + EVIL + "\ud800").strip('"')  # JSON's own \uNNNN escapes
        assert json.loads(out)["trigger_tags"]["function_trigger.event_source_arn"] == "arn:" + EVIL + "\ud800"
    assert shown in out, out
