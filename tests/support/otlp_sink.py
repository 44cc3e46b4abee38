"""A loopback OTLP/HTTP sink: accepts ``POST /v1/traces`` and decodes each protobuf request.

Also usable as a plain sink for benchmarks (``decode=False`` answers without parsing).
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, Dict, List, Optional

from tests.support.http_server import QuietHTTPServer


class OTLPSink:
    """Threaded HTTP/1.1 server on 127.0.0.1; ``requests`` holds ExportTraceServiceRequests."""

    def __init__(self, decode: bool = True, status: int = 200) -> None:
        self.decode = decode
        self.status = status
        self.requests: List[Any] = []
        self.bodies = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                sink._store(self.path, body)
                self.send_response(sink.status)
                self.send_header("Content-Type", self.headers.get("Content-Type") or "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.traces_url = self.url + "/v1/traces"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _store(self, path: str, body: bytes) -> None:
        with self.lock:
            self.bodies += 1
        if not self.decode or not path.startswith("/v1/traces"):
            return
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.lock:
            self.requests.append(request)

    def spans(self) -> List[Dict[str, Any]]:
        """Every received span as ``{"trace_id": int, "span_id": int, "parent_id": int, "name"}``."""
        out: List[Dict[str, Any]] = []
        with self.lock:
            requests = list(self.requests)
        for request in requests:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out.append(
                            {
                                "trace_id": int.from_bytes(span.trace_id, "big"),
                                "span_id": int.from_bytes(span.span_id, "big"),
                                "parent_id": int.from_bytes(span.parent_span_id, "big") if span.parent_span_id else 0,
                                "name": span.name,
                            }
                        )
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> "OTLPSink":
        return self

    def __exit__(self, *exc: Optional[Any]) -> None:
        self.close()
