"""Agents for the exporter tests: the real ``ddapm-test-agent``, and a scriptable fake for faults.

``run_test_agent()`` starts ddapm-test-agent bound to 127.0.0.1 on free ports (APM, OTLP HTTP and
gRPC: its OTLP listeners would otherwise take 4317/4318) with the header checks enabled through
``ENABLED_CHECKS`` (its ``--enabled-checks`` flag does not work), and stops it afterwards.

``FakeAgent`` is a small threaded HTTP/1.1 server on 127.0.0.1 whose answer to each trace request
is chosen by a script: status codes, a reset connection mid-body, a garbage status line or body,
or a handler that blocks until the test releases it. Every loop in it is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import msgpack

from tests.support.http_server import QuietHTTPServer

DEFAULT_CHECKS = "trace_count_header,meta_tracer_version_header,trace_content_length"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _agent_command() -> List[str]:
    script = os.path.join(os.path.dirname(sys.executable), "ddapm-test-agent")
    if os.path.exists(script):
        return [script]
    found = shutil.which("ddapm-test-agent")
    if found:
        return [found]
    return [sys.executable, "-c", "from ddapm_test_agent.agent import main; main()"]


class TestAgent:
    """A running ddapm-test-agent and its test API."""

    __test__ = False  # not a pytest class

    def __init__(self, process: subprocess.Popen, port: int, socket_path: str, log_path: str) -> None:
        self.process = process
        self.log_path = log_path  # the agent's own output (stdout and stderr), for failure messages
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.socket_path = socket_path  # the same agent over a unix socket
        self.unix_url = "unix://" + socket_path

    def get(self, path: str, token: Optional[str] = None, timeout: float = 5.0) -> Tuple[int, bytes]:
        """GET one of the agent's paths (its test API), in session ``token`` when not None."""
        url = self.url + path
        if token is not None:
            url += ("&" if "?" in url else "?") + "test_session_token=" + token
        request = urllib.request.Request(url)
        if token is not None:
            request.add_header("X-Datadog-Test-Session-Token", token)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def log_tail(self, size: int = 2000) -> str:
        """The end of the agent's own output."""
        try:
            with open(self.log_path, "rb") as log:
                return log.read()[-size:].decode("utf-8", "replace")
        except OSError as error:
            return "(no agent log: %s)" % error

    def start_session(self, token: Optional[str]) -> None:
        """Start session ``token``; None starts the agent's sessionless session (every request
        from then on, whatever its token)."""
        status, body = self.get("/test/session/start", token)
        assert status == 200, body

    def clear(self, token: Optional[str]) -> None:
        self.get("/test/session/clear", token)

    def traces(self, token: Optional[str]) -> List[List[Dict[str, Any]]]:
        status, body = self.get("/test/session/traces", token)
        assert status == 200, body
        return json.loads(body)

    def requests(self, token: Optional[str]) -> List[Dict[str, Any]]:
        status, body = self.get("/test/session/requests", token)
        assert status == 200, body
        return json.loads(body)

    def wait_for_traces(self, token: Optional[str], count: int, timeout: float = 10.0) -> List[List[Dict[str, Any]]]:
        """The session's traces once at least ``count`` spans arrived (bounded polling)."""
        traces: List[List[Dict[str, Any]]] = []
        for _ in range(int(timeout / 0.05) + 1):
            traces = self.traces(token)
            if sum(len(t) for t in traces) >= count:
                return traces
            time.sleep(0.05)
        return traces


def dd_trace_id(span: Mapping[str, Any]) -> str:
    """An agent span's trace id as the log correlation writes it: 32 hex digits with a high half,
    else decimal."""
    high = span["meta"].get("_dd.p.tid")
    return high + "%016x" % span["trace_id"] if high and int(high, 16) else str(span["trace_id"])


@contextlib.contextmanager
def run_test_agent(enabled_checks: str = DEFAULT_CHECKS) -> Iterator[TestAgent]:
    port, otlp_http, otlp_grpc = free_port(), free_port(), free_port()
    snapshots = tempfile.mkdtemp(prefix="ddagent-snapshots-")
    env = dict(os.environ)
    env["ENABLED_CHECKS"] = enabled_checks
    env.pop("DD_TRACE_AGENT_URL", None)
    command = _agent_command() + [
        "--host", "127.0.0.1",
        "--port", str(port),
        "--otlp-http-port", str(otlp_http),
        "--otlp-grpc-port", str(otlp_grpc),
        "--snapshot-dir", snapshots,
        "--log-level", "WARNING",
        "--trace-uds-socket", os.path.join(snapshots, "apm.socket"),
    ]
    log_path = os.path.join(snapshots, "agent.log")
    # its output goes to a file, not to the test run's output nor to a pipe nobody drains
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    agent = TestAgent(process, port, os.path.join(snapshots, "apm.socket"), log_path)
    try:
        for _ in range(300):  # up to ~30 s for a cold interpreter
            if process.poll() is not None:
                raise RuntimeError("ddapm-test-agent exited: %s" % agent.log_tail())
            try:
                status, _ = agent.get("/info", timeout=1.0)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("ddapm-test-agent did not start: %s" % agent.log_tail())
        yield agent
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(snapshots, ignore_errors=True)


# ---------------------------------------------------------------- fault injection

# What the script answers for one request: an HTTP status (with an optional body), or one of
RESET = "reset"  # read part of the body, then close the connection with an RST
GARBAGE_STATUS = "garbage-status"  # a line that is not HTTP
BLOCK = "block"  # wait until FakeAgent.release is set (bounded), then answer 200

Action = Any  # int | (int, bytes) | RESET | GARBAGE_STATUS | BLOCK
Script = Callable[["Received"], Action]


class Received:
    """One request as the fake agent saw it."""

    def __init__(self, path: str, headers: Dict[str, str], body: bytes, number: int, client_port: int = 0) -> None:
        self.path = path
        self.headers = headers
        self.body = body
        self.number = number  # 0-based index among all requests
        self.client_port = client_port  # the connection it came on (the client's port)

    @property
    def traces(self) -> List[List[Dict[str, Any]]]:
        return msgpack.unpackb(self.body) if self.path.startswith("/v0.4") else []


class FakeAgent:
    """Threaded HTTP/1.1 server on 127.0.0.1; keeps the requests it answered 2xx in ``accepted``."""

    def __init__(self, script: Optional[Script] = None, port: int = 0, max_body: Optional[int] = None) -> None:
        self.script: Script = script or (lambda request: 200)
        self.max_body = max_body  # answer 413 above this many bytes
        self.requests: List[Received] = []
        self.accepted: List[Received] = []
        self.lock = threading.Lock()
        self.blocked = threading.Event()  # set when a BLOCK handler is waiting
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_PUT(self) -> None:  # noqa: N802
                fake._handle(self)

            do_POST = do_PUT

        self.server = QuietHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        with self.lock:
            number = len(self.requests)
        client_port = handler.client_address[1]
        peek = Received(handler.path, dict(handler.headers), b"", number, client_port)
        action = self.script(peek)
        if action == RESET:
            handler.rfile.read(min(length, max(1, length // 2)))
            sock = handler.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.close_connection = True
            sock.close()
            with self.lock:
                self.requests.append(peek)
            return
        body = handler.rfile.read(length)
        received = Received(handler.path, dict(handler.headers), body, number, client_port)
        with self.lock:
            self.requests.append(received)
        if self.max_body is not None and length > self.max_body and action == 200:
            action = 413
        if action == GARBAGE_STATUS:
            handler.wfile.write(b"THIS IS NOT HTTP\r\n\r\n")
            handler.close_connection = True
            return
        if action == BLOCK:
            self.blocked.set()
            self.release.wait(20)
            action = 200
        status, payload = (action if isinstance(action, tuple) else (action, b'{"rate_by_service":{}}'))
        if 200 <= status < 300:
            with self.lock:
                self.accepted.append(received)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def span_ids(self) -> List[int]:
        with self.lock:
            accepted = list(self.accepted)
        return [span["span_id"] for r in accepted for chunk in r.traces for span in chunk]

    def spans(self) -> List[Dict[str, Any]]:
        with self.lock:
            accepted = list(self.accepted)
        return [span for r in accepted for chunk in r.traces for span in chunk]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> "FakeAgent":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
