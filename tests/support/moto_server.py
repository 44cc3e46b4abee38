"""A real moto server (AWS APIs over HTTP) on 127.0.0.1, on a free port, for boto3 clients."""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator

REGION = "us-east-1"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's threaded server, yield its endpoint URL, stop it afterwards."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield "http://%s:%d" % (host, port)
    finally:
        server.stop()


def client(endpoint: str, service: str):
    """A boto3 client for ``service`` on the moto endpoint, with dummy credentials."""
    import boto3

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    return session.client(service, endpoint_url=endpoint)


def aws_env(endpoint: str) -> Dict[str, str]:
    """Environment variables that point a plain ``boto3.client(service)`` (as in a Lambda
    function, no arguments) at the moto endpoint, for a subprocess."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
