"""Worst-case cost of hostile Lambda events (issue 9, point 6): time and memory of extract_context
(parent, links and trigger tags) on events built to be expensive, each at most 6 MB of JSON
(Lambda's payload limit).

Each case runs in a fresh child process that loads the event from a JSON file (as the runtime
does), then measures the extraction: median and worst wall time over several runs, the
tracemalloc peak of one run (what the extraction allocated), and the process's peak RSS
(ru_maxrss) before and after (RSS before includes the event the runtime parsed).

    .venv/bin/python benchmarks/bench_hostile.py [--runs 5] [--case NAME ...]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.hostile import gzip_b64  # noqa: E402 (the repository's root is on the path first)

MB = 1024 * 1024
LIMIT = 6 * 1000 * 1000  # every event stays under Lambda's 6 MB (the smaller reading of "MB")
CTX = {"x-datadog-trace-id": "123", "x-datadog-parent-id": "456", "x-datadog-sampling-priority": "1",
       "traceparent": "00-0000000000000000000000000000007b-00000000000001c8-01"}
HEAD = b'{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/bomb","logEvents":["'


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _containers(size: int, prefix: str) -> str:
    """A JSON object of ``size`` characters that is almost all empty lists: the most Python
    objects per input byte (about 20 bytes of memory per byte of JSON)."""
    count = (size - len(prefix) - 4) // 3
    return prefix + '"a":[' + ",".join(["[]"] * count) + "]}"


def _sqs_record(body: str, attribute: Any = None) -> Dict[str, Any]:
    record = {"eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "messageId": "m",
              "body": body, "attributes": {"SentTimestamp": "1"}, "messageAttributes": {}}
    if attribute is not None:
        record["messageAttributes"]["_datadog"] = attribute
    return record


def awslogs_bomb() -> Dict[str, Any]:
    # 1 GiB of inflated data in ~1.4 MB of base64: the shape of the 1.3 MB bomb
    return {"awslogs": {"data": gzip_b64((HEAD, 1), (b" " * MB, 1024), (b'"]}', 1))}}


def awslogs_bomb_group_last() -> Dict[str, Any]:
    return {"awslogs": {"data": gzip_b64((b'{"messageType":"', 1), (b"A" * MB, 1024), (b'","logGroup":"x"}', 1))}}


def awslogs_incompressible() -> Dict[str, Any]:
    rng = random.Random(9)
    noise = bytes(rng.getrandbits(8) for _ in range(LIMIT * 3 // 4 - 200_000))
    return {"awslogs": {"data": gzip_b64((HEAD, 1), (noise, 1))}}


def sqs_container_bodies() -> Dict[str, Any]:
    body = _containers(LIMIT // 6 - 2000, '{"Type":"Notification","TopicArn":"t","_datadog":0,')
    return {"Records": [_sqs_record(body) for _ in range(5)]}


def sqs_deep_bodies() -> Dict[str, Any]:
    body = '{"Type":"Notification","TopicArn":"t","_datadog":' + "[" * (LIMIT // 6 - 2000)
    return {"Records": [_sqs_record(body) for _ in range(5)]}


def kinesis_container_records() -> Dict[str, Any]:
    data = _b64(_containers(MB - 1000, '{"_datadog":{},'))
    return {"Records": [{"eventSource": "aws:kinesis", "eventSourceARN": "arn:aws:kinesis:us-east-1:1:stream/s",
                         "kinesis": {"data": data, "sequenceNumber": "1"}} for _ in range(4)]}


def sns_max_binary_records() -> Dict[str, Any]:
    # the largest _datadog each record may carry (8 KiB of JSON, 16 KiB of base64), all nesting
    value = _b64(_containers(8190, "{"))
    record = {"EventSource": "aws:sns", "Sns": {"TopicArn": "arn:aws:sns:us-east-1:1:t", "MessageId": "m",
                                                "MessageAttributes": {"_datadog": {"Type": "Binary", "Value": value}}}}
    return {"Records": [record] * (LIMIT // (len(value) + 200))}


def sqs_ten_thousand_contexts() -> Dict[str, Any]:
    # SQS's largest batch (10,000 records, with a batching window), each with a valid context: a link each
    attribute = {"dataType": "String", "stringValue": json.dumps(CTX)}
    return {"Records": [_sqs_record("x" * 100, attribute) for _ in range(10_000)]}


def api_gateway_huge_headers() -> Dict[str, Any]:
    headers = {"x-h%d" % i: "v" * 1000 for i in range(5000)}
    headers.update({"x-datadog-trace-id": "9" * 8000, "x-datadog-tags": "_dd.p.a=" + "b" * 8000,
                    "tracestate": ",".join("k%d=v" % i for i in range(2000)), "traceparent": "00-" + "f" * 8000})
    return {"resource": "/", "path": "/", "httpMethod": "GET", "headers": headers,
            "requestContext": {"apiId": "a", "stage": "s", "requestId": "r", "domainName": "d", "httpMethod": "GET",
                               "requestTimeEpoch": 1}}


CASES: Dict[str, Callable[[], Dict[str, Any]]] = {
    "awslogs-gzip-bomb-1GiB": awslogs_bomb,
    "awslogs-gzip-bomb-1GiB-group-last": awslogs_bomb_group_last,
    "awslogs-6MB-incompressible": awslogs_incompressible,
    "sqs-5x1.2MB-container-bodies": sqs_container_bodies,
    "sqs-5x1.2MB-deep-bodies": sqs_deep_bodies,
    "kinesis-4x1MiB-container-records": kinesis_container_records,
    "sns-max-binary-datadog-x360": sns_max_binary_records,
    "sqs-10000-records-with-context": sqs_ten_thousand_contexts,
    "api-gateway-6MB-headers": api_gateway_huge_headers,
}


class LambdaContext:
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    client_context = None
    aws_request_id = "bench"


def child(path: str, runs: int) -> None:
    with open(path, "rb") as handle:
        event = json.load(handle)
    sys.path.insert(0, str(ROOT))
    from otel_dd_lambda import extract_context

    def once() -> Any:
        result = extract_context(event, LambdaContext())
        return result.parent, len(result.links), result.trigger_tags

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        parent, links, tags = once()
        times.append(time.perf_counter() - start)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    once()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"median_ms": statistics.median(times) * 1e3, "max_ms": max(times) * 1e3,
                      "traced_peak_mb": peak / MB, "maxrss_before_mb": rss_before / 1024,
                      "maxrss_after_mb": rss_after / 1024, "parent": parent is not None, "links": links,
                      "arn": tags.get("function_trigger.event_source_arn", "")[-40:]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.runs)
        return
    print("%-48s %8s %9s %8s %13s %13s  %s" % ("case (event size)", "med ms", "max ms", "alloc MB",
                                               "RSS before MB", "RSS after MB", "outcome"))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.case or list(CASES):
            event = CASES[name]()
            path = os.path.join(tmp, "event.json")
            with open(path, "w") as handle:
                json.dump(event, handle)
            size = os.path.getsize(path)
            assert size <= LIMIT, (name, size)
            del event
            proc = subprocess.run([sys.executable, __file__, "--child", path, "--runs", str(args.runs)],
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                print("%-48s failed: %s" % (name, proc.stderr.strip().splitlines()[-1:]))
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            outcome = "parent=%s links=%d %s" % (r["parent"], r["links"], r["arn"])
            print("%-48s %8.1f %9.1f %8.2f %13.1f %13.1f  %s" % (
                "%s (%.1f MB)" % (name, size / 1e6), r["median_ms"], r["max_ms"], r["traced_peak_mb"],
                r["maxrss_before_mb"], r["maxrss_after_mb"], outcome))


if __name__ == "__main__":
    main()
