"""A real mosquitto broker on 127.0.0.1, on a free port, with a config file of its own."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Iterator, Tuple

BINARY = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def available() -> bool:
    return os.path.exists(BINARY)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mosquitto() -> Iterator[Tuple[str, int]]:
    """Start mosquitto bound to 127.0.0.1, yield ``(host, port)``, stop it afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % port)
        log_path = os.path.join(tmp, "mosquitto.log")
        # its log goes to a file, not to the test run's output nor to a pipe nobody drains
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([BINARY, "-c", conf], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
        try:
            for _ in range(200):  # wait until it accepts connections (readiness, not timing)
                if proc.poll() is not None:
                    with open(log_path, "rb") as log:
                        raise RuntimeError("mosquitto exited: %s" % log.read()[-2000:].decode(errors="replace"))
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield "127.0.0.1", port
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
