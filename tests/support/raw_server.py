"""A threaded raw-socket server on 127.0.0.1 for transport and agent-fault tests: it accepts
connections until stopped and hands each to the subclass's ``_serve(conn, client_port)`` on a
thread of its own. Raw sockets, not an HTTP library, so that a test controls every byte."""

from __future__ import annotations

import socket
import threading
from typing import Any, List, Optional, Tuple


class RawServer:
    def __init__(self, backlog: int = 64) -> None:
        self.stopped = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(backlog)
        self.listener.settimeout(0.05)  # the accept loop looks at ``stopped`` this often
        self.port: int = self.listener.getsockname()[1]
        self.threads: List[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopped.set()
        self._accepting.join(5)
        self.listener.close()
        for thread in self.threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, address = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn, address[1]), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, client_port: int) -> None:
        raise NotImplementedError

    @staticmethod
    def read_head(conn: socket.socket) -> Optional[Tuple[int, bytes]]:
        """``(Content-Length, the body bytes read with the head)`` of the next request; None when
        the client closed the connection first."""
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        head, _, body = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value)
        return length, body
