"""The threaded HTTP server under the suite's fake endpoints (Runtime API, agent, OTLP sink)."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class QuietHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` whose handler threads die with the test, and which does not print a
    traceback when a client goes away mid-answer: a client the test stopped (a runtime process, an
    exporter shut down) drops its keep-alive connection, which is no error of the fake server.
    Any other exception still gets the standard report."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
