"""The ``otel-dd-lambda`` command: one subcommand per module in ``otel_dd_lambda.commands``.

Each command module (``exec-wrapper-path`` lives in ``exec_wrapper_path``) defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``;
it is imported only when its command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

COMMANDS = ("convert", "inspect", "view", "demo", "exec-wrapper-path", "layer")
_HELP = {
    "convert": "print one trace context (traceparent, Datadog headers JSON or X-Ray header) in every format",
    "inspect": "show which trigger a Lambda event is, the contexts and links it carries",
    "view": "draw the traces in log-mode output (DD_FLUSH_TO_LOG, CloudWatch Logs) as text waterfalls",
    "demo": "run the end-to-end demo: three instrumented handlers, one trace",
    "exec-wrapper-path": "print the path of the AWS_LAMBDA_EXEC_WRAPPER script shipped in the package",
    "layer": "build a Lambda layer zip: the package and its run-time dependencies for one Python and architecture",
}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-dd-lambda", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        # no -h here: `otel-dd-lambda <command> -h` must reach the command's own parser below
        sub.add_parser(name, help=_HELP[name], description=_HELP[name], add_help=False)
    # Parse the command name first so that only its module is imported.
    args, _ = parser.parse_known_args(argv)
    module = importlib.import_module("otel_dd_lambda.commands." + args.command.replace("-", "_"))
    command_parser = argparse.ArgumentParser(prog="otel-dd-lambda " + args.command, description=_HELP[args.command])
    module.add_arguments(command_parser)
    rest = list(sys.argv[1:] if argv is None else argv)
    rest.remove(args.command)
    try:
        return int(module.run(command_parser.parse_args(rest)) or 0)
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
