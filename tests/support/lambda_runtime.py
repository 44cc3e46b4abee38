"""A Lambda Runtime API emulator, and the real runtime interface client (``awslambdaric``) run
against it in a subprocess.

``RuntimeAPI`` is a threaded HTTP/1.1 server on 127.0.0.1 serving the endpoints a Lambda runtime
talks to (version 2018-06-01):

- ``GET  /runtime/invocation/next``: blocks until the test queues an invocation (``invoke``),
  then answers with the event JSON as the body and the ``Lambda-Runtime-Aws-Request-Id``,
  ``-Deadline-Ms``, ``-Invoked-Function-Arn``, ``-Trace-Id`` (and ``-Client-Context``) headers;
- ``POST /runtime/invocation/{id}/response`` and ``.../{id}/error``: the invocation's outcome;
- ``POST /runtime/init/error``: the runtime could not load the handler.

Each outcome is kept as a ``Result`` with the time it arrived. ``on_result`` runs before the
emulator acknowledges a response or error (the runtime waits for that answer), so a test can
look at the world as it was at that instant: which spans the agent already holds, for example.

``LambdaProcess`` starts ``python -m awslambdaric <handler>`` (or any command, such as an exec
wrapper in front of it) with the environment Lambda gives a function, pointed at the emulator.
Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from tests.support.http_server import QuietHTTPServer

PREFIX = "/2018-06-01/runtime"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REGION = "us-east-1"
ACCOUNT = "123456789012"


class Invocation:
    """One queued invocation: what ``/invocation/next`` hands to the runtime."""

    def __init__(self, event: Any, request_id: str, trace_id: Optional[str], deadline_ms: int,
                 arn: str, client_context: Optional[Mapping[str, Any]] = None) -> None:
        self.event = event
        self.request_id = request_id
        self.trace_id = trace_id
        self.deadline_ms = deadline_ms  # epoch milliseconds
        self.arn = arn
        self.client_context = client_context
        self.delivered_ns: Optional[int] = None  # when the runtime received it


class Result:
    """What the runtime posted: ``kind`` is "response", "error" or "init_error"."""

    def __init__(self, kind: str, request_id: Optional[str], headers: Dict[str, str], body: bytes) -> None:
        self.kind = kind
        self.request_id = request_id
        self.headers = headers
        self.body = body
        self.received_ns = time.time_ns()
        self.observed: Any = None  # what on_result returned, at receipt, before the acknowledgement

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def __repr__(self) -> str:
        return "Result(%s, %s, %r)" % (self.kind, self.request_id, self.body[:300])


class RuntimeAPI:
    """The emulator. ``address`` is what ``AWS_LAMBDA_RUNTIME_API`` must be set to."""

    def __init__(self, function_name: str = "my-function",
                 on_result: Optional[Callable[[Result], Any]] = None) -> None:
        self.function_name = function_name
        self.arn = "arn:aws:lambda:%s:%s:function:%s" % (REGION, ACCOUNT, function_name)
        self.on_result = on_result
        self._pending: "queue.Queue[Invocation]" = queue.Queue()
        self._results: Dict[str, Result] = {}
        self.init_errors: List[Result] = []
        self.invocations: Dict[str, Invocation] = {}
        self.next_calls = 0  # GET /next requests received
        self._cond = threading.Condition()
        self._closed = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in separate writes: without TCP_NODELAY each answer waits
            # for the client's delayed ACK (~40 ms), as Lambda's own endpoint does not
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                api._handle_get(self)

            def do_POST(self) -> None:  # noqa: N802
                api._handle_post(self)

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.address = "127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ the test's side

    def invoke(self, event: Any, *, request_id: Optional[str] = None, trace_id: Optional[str] = None,
               timeout_ms: int = 30_000, client_context: Optional[Mapping[str, Any]] = None) -> str:
        """Queue an invocation; returns its request id."""
        request_id = request_id or str(uuid.uuid4())
        invocation = Invocation(event, request_id, trace_id, int(time.time() * 1000) + timeout_ms, self.arn,
                                client_context)
        with self._cond:
            self.invocations[request_id] = invocation
        self._pending.put(invocation)
        return request_id

    def result(self, request_id: str, timeout: float = 10.0) -> Result:
        """The response or error of ``request_id``, once posted (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while request_id not in self._results:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed.is_set():
                    raise AssertionError("no result for %s within %.1f s" % (request_id, timeout))
                self._cond.wait(min(left, 0.1))
            return self._results[request_id]

    def call(self, event: Any, timeout: float = 10.0, **kwargs: Any) -> Result:
        return self.result(self.invoke(event, **kwargs), timeout)

    def init_error(self, timeout: float = 10.0) -> Result:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.init_errors:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no init error within %.1f s" % timeout)
                self._cond.wait(min(left, 0.1))
            return self.init_errors[0]

    def close(self) -> None:
        self._closed.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> "RuntimeAPI":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ the runtime's side

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"",
               headers: Optional[Mapping[str, str]] = None) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path != PREFIX + "/invocation/next":
            self._reply(handler, 404, b'{"errorType":"NotFound"}')
            return
        with self._cond:
            self.next_calls += 1
            self._cond.notify_all()
        # Lambda long-polls: the runtime waits here until there is work (bounded by close()).
        while True:
            if self._closed.is_set():
                self._reply(handler, 500, b'{"errorType":"Shutdown"}')
                return
            try:
                invocation = self._pending.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        invocation.delivered_ns = time.time_ns()
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.arn,
        }
        if invocation.trace_id is not None:
            headers["Lambda-Runtime-Trace-Id"] = invocation.trace_id
        if invocation.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = json.dumps(invocation.client_context)
        self._reply(handler, 200, json.dumps(invocation.event).encode(), headers)

    def _handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        if path == PREFIX + "/init/error":
            result = Result("init_error", None, headers, body)
        else:
            parts = path[len(PREFIX):].strip("/").split("/") if path.startswith(PREFIX) else []
            if len(parts) != 3 or parts[0] != "invocation" or parts[2] not in ("response", "error"):
                self._reply(handler, 404, b'{"errorType":"NotFound"}')
                return
            request_id, kind = parts[1], parts[2]
            with self._cond:
                known = request_id in self.invocations and request_id not in self._results
            if not known:  # Lambda refuses a second outcome, or one for an unknown request
                self._reply(handler, 400, b'{"errorType":"InvalidRequestID"}')
                return
            result = Result(kind, request_id, headers, body)
        if self.on_result is not None:
            try:
                result.observed = self.on_result(result)
            except Exception as error:  # the test sees it in .observed
                result.observed = error
        with self._cond:
            if result.kind == "init_error":
                self.init_errors.append(result)
            else:
                self._results[result.request_id] = result  # type: ignore[index]
            self._cond.notify_all()
        self._reply(handler, 202, b'{"status":"OK"}')


def lambda_environment(api: RuntimeAPI, task_root: str, handler: str,
                       extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment Lambda gives a Python function (the variables the runtime and the package
    read), with this repository's package importable and nothing inherited that would leak
    configuration from the test process."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": os.path.dirname(sys.executable),
        "_HANDLER": handler,
        "AWS_LAMBDA_FUNCTION_NAME": api.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/" + api.function_name,
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python%d.%d" % sys.version_info[:2],
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "PYTHONPATH": os.pathsep.join((task_root, ROOT)),
        "PYTHONUNBUFFERED": "1",
        "TZ": ":UTC",
    })
    env.update(extra or {})
    return env


# What Lambda's managed Python runtime does after its bootstrap shell script (which Lambda starts
# as ``$AWS_LAMBDA_EXEC_WRAPPER <python> <this>``): hand ``_HANDLER`` to the runtime client.
MANAGED_BOOTSTRAP = (
    "import os, sys\n"
    "from awslambdaric.__main__ import main\n"
    "main([sys.argv[0], os.environ['_HANDLER']])\n"
)


class LambdaProcess:
    """``awslambdaric`` in a subprocess (stdout and stderr collected), pointed at ``api``."""

    def __init__(self, api: RuntimeAPI, task_root: str, handler: str,
                 env: Optional[Mapping[str, str]] = None, command: Optional[Sequence[str]] = None,
                 process_group: bool = False) -> None:
        self.env = lambda_environment(api, task_root, handler, env)
        self.command = list(command) if command else [sys.executable, "-m", "awslambdaric", handler]
        # process_group: the runtime's forked workers (AWS_LAMBDA_MAX_CONCURRENCY) are stopped with it
        self.process_group = process_group
        self.process = subprocess.Popen(self.command, env=self.env, cwd=task_root, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        start_new_session=process_group)
        self._out: List[bytes] = []
        self._err: List[bytes] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(self.process.stdout, self._out), daemon=True),
            threading.Thread(target=self._drain, args=(self.process.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(stream: Any, sink: List[bytes]) -> None:
        for line in iter(stream.readline, b""):
            sink.append(line)

    @property
    def stdout(self) -> str:
        return b"".join(list(self._out)).decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return b"".join(list(self._err)).decode("utf-8", "replace")

    def wait(self, timeout: float = 10.0) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process_group:
            try:  # the group this object started (its id is the runtime's pid): workers included
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for reader in self._readers:
            reader.join(2)

    def __enter__(self) -> "LambdaProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
