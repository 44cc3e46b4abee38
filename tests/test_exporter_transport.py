"""AgentTransport against a raw-socket server that answers with scripted bytes: the fast path (one
send, one poll, one recv, ``_whole_answer``) and every way out of it to the general path."""

from __future__ import annotations

import select
import socket
import time
from typing import Any, List, Optional, Sequence, Tuple

import pytest

from otel_dd_lambda.exporters import transport
from otel_dd_lambda.exporters.transport import AgentTransport, DeadlineExceeded, Endpoint, _read_response, _whole_answer
from tests.support.raw_server import RawServer

BODY = b'{"rate_by_service":{}}'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n" + BODY
SLACK = 0.5

# An answer: the pieces sent one after the other, each after its delay (seconds); CLOSE as a piece
# closes the connection there.
CLOSE = b""
Answer = Sequence[Tuple[float, bytes]]


class ScriptedAgent(RawServer):
    """Reads each request in full (Content-Length), then sends the next scripted answer."""

    def __init__(self, answers: Sequence[Answer]) -> None:
        self.answers = list(answers)
        self.ports: List[int] = []  # client port of each request read
        self.bodies: List[int] = []  # body size of each request read
        super().__init__(backlog=8)
        self.endpoint = Endpoint("http", "127.0.0.1", self.port)

    def _read_request(self, conn: socket.socket) -> Optional[int]:
        started = self.read_head(conn)
        if started is None:
            return None
        length, body = started
        size = len(body)
        while size < length:
            time.sleep(0.001)  # a slow reader: the client's socket buffer fills up
            data = conn.recv(1 << 20)
            if not data:
                return None
            size += len(data)
        return size

    def _serve(self, conn: socket.socket, port: int) -> None:
        conn.settimeout(10)
        try:
            while not self.stopped.is_set():
                if not select.select([conn], [], [], 0.05)[0]:
                    continue  # idle keep-alive connection: look at ``stopped`` again
                size = self._read_request(conn)
                if size is None or not self.answers:
                    return
                self.ports.append(port)
                self.bodies.append(size)
                for delay, piece in self.answers.pop(0):
                    if delay:
                        time.sleep(delay)
                    if piece is CLOSE:
                        return
                    conn.sendall(piece)
        except OSError:
            pass
        finally:
            conn.close()


def exchange(agent: ScriptedAgent, client: AgentTransport, budget: float = 5.0, body: bytes = b"\x90") -> Any:
    return client.request("PUT", "/v0.4/traces", body, b"Content-Type: application/msgpack\r\n",
                          time.monotonic() + budget)


def whole(answer: bytes) -> Answer:
    return [(0.0, answer)]


def test_fast_path_answer_keeps_the_connection() -> None:
    with ScriptedAgent([whole(OK), whole(OK)]) as agent:
        client = AgentTransport(agent.endpoint)
        assert exchange(agent, client) == (200, BODY, True)
        assert exchange(agent, client) == (200, BODY, True)
        assert len(set(agent.ports)) == 1
        assert client._conn is not None and client._conn.poller is not None  # the fast path was on


@pytest.mark.parametrize("pieces, expected", [
    # split answers: the first recv holds part of the head, or the head without the body
    ([(0.0, OK[:20]), (0.05, OK[20:])], (200, BODY, True)),
    ([(0.0, OK[:-len(BODY)]), (0.05, BODY)], (200, BODY, True)),
    ([(0.0, OK[:-3]), (0.05, OK[-3:])], (200, BODY, True)),
    # chunked
    ([(0.0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")], (200, b"hello", True)),
    ([(0.0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"), (0.05, b"lo\r\n0\r\n\r\n")],
     (200, b"hello", True)),
    # interim answers, other statuses, other forms of the same header
    ([(0.0, b"HTTP/1.1 100 Continue\r\n\r\n" + OK)], (200, BODY, True)),
    ([(0.0, b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")], (202, b"{}", True)),
    ([(0.0, b"HTTP/1.1 204 No Content\r\n\r\n")], (204, b"", True)),
    ([(0.0, b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}")], (200, b"{}", True)),
    ([(0.0, b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH:2\r\n\r\n{}")], (200, b"{}", True)),
    ([(0.0, b"HTTP/1.1 200 OK\r\ncontent-length :  2 \r\n\r\n{}")], (200, b"{}", True)),
    ([(0.0, b"HTTP/1.1 200 OK\r\n Content-Length: 2\r\n\r\n{}")], (200, b"{}", True)),
    ([(0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Length: 2\r\n\r\n{}")], (200, b"{}", True)),
    ([(0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra")], (200, b"{}", True)),
    ([(0.0, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad")], (400, b"bad", True)),
])
def test_answers_off_the_fast_path(pieces: Answer, expected: Tuple[int, bytes, bool]) -> None:
    with ScriptedAgent([pieces, whole(OK)]) as agent:
        client = AgentTransport(agent.endpoint)
        assert exchange(agent, client) == expected
        assert exchange(agent, client) == (200, BODY, True)  # and the fast path again after it
        assert len(set(agent.ports)) == 1


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 22\r\n\r\n" + BODY,
    b"HTTP/1.0 200 OK\r\nContent-Length: 22\r\n\r\n" + BODY,
    b"HTTP/1.1 200 OK\r\n\r\n" + BODY,  # delimited by the end of the connection
])
def test_answers_that_end_the_connection(answer: bytes) -> None:
    with ScriptedAgent([[(0.0, answer), (0.0, CLOSE)], whole(OK)]) as agent:
        client = AgentTransport(agent.endpoint)
        assert exchange(agent, client) == (200, BODY, True)
        assert client._conn is None or client._conn.sock is None
        assert exchange(agent, client) == (200, BODY, True)
        assert len(set(agent.ports)) == 2


def test_oversize_body_is_cut_and_the_connection_dropped() -> None:
    big = b"x" * 300_000  # more than one recv: the rest is not read but dropped with the connection
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big
    with ScriptedAgent([whole(answer), whole(OK)]) as agent:
        client = AgentTransport(agent.endpoint, max_response=1000)
        assert exchange(agent, client) == (200, big[:1000], True)
        assert exchange(agent, client) == (200, BODY, True)
        assert len(set(agent.ports)) == 2


def test_idle_connection_closed_by_the_agent_is_retried_on_a_new_one() -> None:
    with ScriptedAgent([[(0.0, OK), (0.0, CLOSE)], whole(OK)]) as agent:
        client = AgentTransport(agent.endpoint)
        assert exchange(agent, client) == (200, BODY, True)
        time.sleep(0.1)  # the agent has closed its end: the fast path's recv reads the end
        assert exchange(agent, client) == (200, BODY, True)
        assert len(set(agent.ports)) == 2


def test_request_larger_than_the_socket_buffer_goes_out_whole() -> None:
    # the fast path's non-blocking send leaves most of it to the general path's sendall
    body = b"\x90" * (8 << 20)
    with ScriptedAgent([whole(OK), whole(OK)]) as agent:
        client = AgentTransport(agent.endpoint)
        assert exchange(agent, client, body=body) == (200, BODY, True)
        assert exchange(agent, client) == (200, BODY, True)
        assert agent.bodies == [len(body), 1] and len(set(agent.ports)) == 1


def test_slow_agent_costs_the_deadline_only() -> None:
    with ScriptedAgent([[(1.0, OK)]]) as agent:
        client = AgentTransport(agent.endpoint)
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            exchange(agent, client, budget=0.3)
        assert time.monotonic() - start < 0.3 + SLACK
        assert client._conn is None or client._conn.sock is None


def test_deadline_inside_a_split_head_or_body() -> None:
    head = OK[:-len(BODY)]
    with ScriptedAgent([[(0.0, OK[:20]), (1.0, OK[20:])], [(0.0, head + BODY[:5]), (1.0, BODY[5:])]]) as agent:
        client = AgentTransport(agent.endpoint)
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded):  # the status line is known, not the rest of the head
            exchange(agent, client, budget=0.3)
        assert time.monotonic() - start < 0.3 + SLACK
        start = time.monotonic()
        assert exchange(agent, client, budget=0.3) == (200, BODY[:5], False)  # the status is known
        assert time.monotonic() - start < 0.3 + SLACK


def test_deadline_already_passed_sends_nothing() -> None:
    with ScriptedAgent([whole(OK)]) as agent:
        client = AgentTransport(agent.endpoint)
        client.connect(time.monotonic() + 5)
        with pytest.raises(DeadlineExceeded):
            client.request("PUT", "/v0.4/traces", b"\x90", b"", time.monotonic() - 1)
        time.sleep(0.1)
        assert agent.ports == []


def test_without_the_fast_path_everything_takes_the_general_path(monkeypatch: Any) -> None:
    monkeypatch.setattr(transport, "_DONTWAIT", 0)  # a platform without MSG_DONTWAIT or poll()
    with ScriptedAgent([whole(OK), [(0.0, OK[:20]), (0.05, OK[20:])]]) as agent:
        client = AgentTransport(agent.endpoint)
        assert exchange(agent, client) == (200, BODY, True)
        assert client._conn is not None and client._conn.poller is None
        assert exchange(agent, client) == (200, BODY, True)


ANSWERS = [
    OK,
    b"HTTP/1.1 200 OK\r\nDate: Wed, 02 Dec 2026 17:00:00 GMT\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length:+2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2_0\r\n\r\n" + b"x" * 20,
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length:2",
    b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: \xa02\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nX-Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nX-Note: connection\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}",
    b"http/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{",
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_fast_parse_agrees_with_the_general_parser(answer: bytes) -> None:
    # whatever _whole_answer accepts, _read_response reads the same way (status, body, keep-alive)
    fast = _whole_answer(answer, 1000)
    pieces = [answer]

    def recv(size: int) -> bytes:
        return pieces.pop(0) if pieces else b""

    try:
        general: Optional[Tuple[int, bytes, bool, bool]] = _read_response(recv, 1000)
    except OSError:
        general = None
    if fast is not None:
        assert general == (200, fast, False, True)
    assert (fast is not None) == (answer in ANSWERS[:5])
