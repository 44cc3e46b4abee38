"""``otel-dd-lambda inspect EVENT.json``: which trigger an event is, the context(s) it carries in
every format, the links of a batch, and why a malformed carrier was ignored.

The file is untrusted: only a regular file is opened (a FIFO or device could block or never
end), at most 6 MB is read (Lambda's payload limit: a larger file is no Lambda event), and every
failure is one line on stderr with exit code 2. Text from the event reaches the terminal with its
control characters (C0, DEL, C1, unicode bidi and line separators, lone surrogates) escaped, so
an event cannot move the cursor, retitle the window or reorder what is shown.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import stat
import sys
from typing import Any, Dict, List

HELP = "show which trigger a Lambda event is, the contexts and links it carries"
MAX_INPUT = 6 * 1024 * 1024  # Lambda's synchronous payload limit
PREFIX = "otel-dd-lambda inspect: "
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


class InputError(Exception):
    """The event cannot be read: the message is the one line shown."""


def escape(text: Any) -> str:
    """``text`` with every character that a terminal would act on written as ``\\xNN``/``\\uNNNN``."""
    return _UNSAFE.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 0x100 else "\\u%04x" % ord(m.group()),
                       text if type(text) is str else str(text))


def _read_bounded(fd: int) -> bytes:
    chunks: List[bytes] = []
    size = 0
    while size <= MAX_INPUT:
        chunk = os.read(fd, min(1 << 20, MAX_INPUT + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > MAX_INPUT:
        raise InputError("larger than %d bytes (Lambda's payload limit)" % MAX_INPUT)
    return b"".join(chunks)


def read_input(path: str) -> bytes:
    """The bytes of ``path`` (``-``: standard input), at most MAX_INPUT, or InputError saying why not.

    Shared by every command that reads an untrusted file (``inspect``, ``view``).
    """
    try:
        if path == "-":
            return _read_bounded(sys.stdin.fileno())
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InputError("not a regular file")
        # O_NONBLOCK: if a FIFO replaced the file since the stat, open() does not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InputError("not a regular file")
            return _read_bounded(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError(exc.strerror or type(exc).__name__) from None
    except ValueError:  # a NUL in the path
        raise InputError("not a valid path") from None


def read_event(path: str) -> Any:
    """The JSON event in ``path`` (``-``: standard input), or InputError saying why not."""
    data = read_input(path)
    try:
        return json.loads(data)  # UTF-8/16/32 detected as json.loads does
    except RecursionError:
        raise InputError("JSON nested too deeply") from None
    except MemoryError:
        raise InputError("out of memory parsing the JSON") from None
    except UnicodeDecodeError as exc:
        raise InputError("not valid UTF-8/16/32 text (byte %d)" % exc.start) from None
    except ValueError as exc:
        raise InputError("not JSON: %s" % str(exc).splitlines()[0][:200]) from None


def fail(prefix: str, path: str, reason: str) -> int:
    """One escaped line on stderr saying why ``path`` cannot be read; the exit code 2."""
    print(prefix + "cannot read %s: %s" % (escape(path)[:512], escape(reason)), file=sys.stderr)
    return 2


def _fail(path: str, reason: str) -> int:
    return fail(PREFIX, path, reason)


def safe_streams() -> None:
    """A terminal that cannot show a character gets an escape, not a traceback."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except Exception:
            pass


def _say(line: str) -> None:
    print(escape(line))


class _Reasons(logging.Handler):
    """Collects the debug messages that explain why a carrier was ignored."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:
            pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("event", help="a Lambda event as JSON (a file, or - for standard input)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--function-arn", metavar="ARN",
                        help="the receiving function's ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME): its "
                             "region and account complete the ARNs Datadog builds for API Gateway, Function "
                             "URL, CloudWatch Logs and CloudFront triggers (else AWS_REGION, if set)")


class _Context:
    """The one Lambda context attribute that trigger tags read."""

    def __init__(self, function_arn: str) -> None:
        self.invoked_function_arn = function_arn


# ARNs that Datadog builds from the function's own region and account (the event has none):
# service -> which of region (index 3) and account (index 4) it needs.
_BUILT_ARN_NEEDS = {"apigateway": (3,), "lambda": (3, 4), "logs": (3, 4), "cloudfront": (4,)}


def _incomplete_arn(arn: Any) -> bool:
    """A built ARN whose region or account is empty: no Lambda context told us them."""
    if type(arn) is not str:
        return False
    parts = arn.split(":")
    return len(parts) > 4 and any(not parts[i] for i in _BUILT_ARN_NEEDS.get(parts[2], ()))


def _formats(span_context: Any) -> Dict[str, Any]:
    from .. import ids
    from ..injection import get_trace_headers
    from ..propagators import ddstate

    headers = get_trace_headers(span_context)
    state = ddstate.parse_dd_member(span_context.trace_state.get(ddstate.MEMBER_KEY))
    return {
        "traceparent": "00-%032x-%016x-%02x" % (span_context.trace_id, span_context.span_id, span_context.trace_flags),
        "tracestate": span_context.trace_state.to_header() or None,
        "datadog": {
            "trace_id": str(ids.dd_trace_id(span_context.trace_id)),
            "parent_id": str(span_context.span_id),
            "sampling_priority": ddstate.sampling_priority(span_context.trace_flags.sampled, state),
            "tags": headers.get("x-datadog-tags"),
            "origin": state.origin if state else None,
        },
        "xray": headers.get("X-Amzn-Trace-Id"),
    }


def run(args: argparse.Namespace) -> int:
    safe_streams()
    try:
        event = read_event(args.event)
    except InputError as exc:
        return _fail(args.event, str(exc))
    try:
        return _report(args, event)
    except BrokenPipeError:
        raise
    except RecursionError:
        return _fail(args.event, "event nested too deeply")
    except Exception as exc:  # a bug of ours on odd input: still one line, still exit code 2
        return _fail(args.event, "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else ""))


def _report(args: argparse.Namespace, event: Any) -> int:
    from ..extract import extract_context

    handler = _Reasons()
    names = ("otel_dd_lambda", "otel_dd_lambda.propagators", "otel_dd_lambda.carriers")
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    logging.getLogger("otel_dd_lambda").addHandler(handler)
    try:
        result = extract_context(event, _Context(args.function_arn) if args.function_arn else None)
        tags = dict(result.trigger_tags)
        notes = []
        if _incomplete_arn(tags.get("function_trigger.event_source_arn")):
            # an ARN without the region/account would be wrong, not just incomplete: leave it out
            del tags["function_trigger.event_source_arn"]
            notes.append("function_trigger.event_source_arn needs the function's region and account: "
                         "pass --function-arn")
        report: Dict[str, Any] = {
            "trigger": result.trigger,
            "trigger_tags": tags,
            "source": result.source,
            "parent": _formats(result.parent) if result.parent is not None else None,
            "links": [
                dict(_formats(link.context), attributes=dict(link.attributes or {})) for link in result.links
            ],
            "event_time_ns": result.event_time_ns,
            "ignored": list(dict.fromkeys(handler.messages)),
            "notes": notes,
        }
    finally:
        logging.getLogger("otel_dd_lambda").removeHandler(handler)
        for lg, level in saved:
            lg.setLevel(level)

    if args.json:
        # ensure_ascii writes everything outside printable ASCII (DEL, C1, bidi...) as \uNNNN
        print(json.dumps(report, indent=2, default=str))
        return 0
    _say("trigger:  %s" % (report["trigger"] or "unknown"))
    for key, value in report["trigger_tags"].items():
        _say("  %s = %s" % (key, value))
    if report["parent"] is None:
        _say("parent:   none (a new trace)")
    else:
        _say("parent:   from %s" % report["source"])
        _print_formats(report["parent"], "  ")
    for index, link in enumerate(report["links"]):
        _say("link %d:   %s" % (index, ", ".join("%s=%s" % kv for kv in link["attributes"].items())))
        _print_formats(link, "  ")
    for reason in report["ignored"]:
        _say("ignored:  %s" % reason)
    for note in report["notes"]:
        _say("note:     %s" % note)
    return 0


def _print_formats(formats: Dict[str, Any], indent: str) -> None:
    _say("%straceparent  %s" % (indent, formats["traceparent"]))
    if formats["tracestate"]:
        _say("%stracestate   %s" % (indent, formats["tracestate"]))
    dd = formats["datadog"]
    _say("%sdatadog      trace_id=%s parent_id=%s priority=%s tags=%s%s" % (
        indent, dd["trace_id"], dd["parent_id"], dd["sampling_priority"], dd["tags"] or "-",
        " origin=%s" % dd["origin"] if dd["origin"] else ""))
    _say("%sx-ray        %s" % (indent, formats["xray"]))
