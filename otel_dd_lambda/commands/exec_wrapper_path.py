"""``otel-dd-lambda exec-wrapper-path``: where the ``AWS_LAMBDA_EXEC_WRAPPER`` script is."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "print the path of the AWS_LAMBDA_EXEC_WRAPPER script shipped in the package"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", metavar="DIR",
                        help="print the path as Lambda will see it, with the package's install "
                             "directory replaced by DIR (e.g. /opt/python for a layer)")


def run(args: argparse.Namespace) -> int:
    from ..exec_wrapper import script_path

    path = script_path()
    if not os.access(path, os.X_OK):
        # Lambda execs the wrapper directly: without the execute bit the function cannot start.
        print("warning: %s is not executable (chmod 755 it before packaging)" % path, file=sys.stderr)
    if args.root:
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(path)))
        path = os.path.join(args.root, os.path.relpath(path, package_parent))
    print(path)
    return 0
