"""The user functions the Lambda runtime tests deploy, and the task root that holds them.

``USER_CODE`` maps file names to module sources (dedented when written): a plain handler that
logs, echoes and raises a user exception on request; the same handler decorated; and modules that
fail to load in each way a deployment can (raising, a missing dependency, a syntax error).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Dict, Mapping

# Modules whose import fails, each in its own way (the init errors the runtime reports).
INIT_FAILURES: Dict[str, str] = {
    "raises_on_import.py": '''
        raise RuntimeError("TABLE_NAME is not configured")
    ''',
    "imports_missing.py": '''
        import no_such_dependency_here
        def handler(event, context):
            return 1
    ''',
    "syntax_error.py": '''
        def handler(event, context)
            return 1
    ''',
}

USER_CODE = {
    "plain.py": '''
        import logging
        import os

        logger = logging.getLogger("user")
        logger.setLevel(logging.INFO)  # Lambda's text format leaves the root logger at WARNING


        class OrderRejected(Exception):
            pass


        def handler(event, context):
            logger.info("handling %s", context.aws_request_id)
            if "reject" in event:
                raise OrderRejected("order %s rejected: out of stock" % event["reject"])
            return {"echo": event, "request_id": context.aws_request_id,
                    "xray": os.environ.get("_X_AMZN_TRACE_ID"),
                    "time_left": 0 < context.get_remaining_time_in_millis() <= 30000}
    ''',
    "decorated.py": '''
        import otel_dd_lambda
        from plain import handler as plain_handler

        handler = otel_dd_lambda.instrument_handler(plain_handler)
    ''',
    **INIT_FAILURES,
}


def write_task_root(root: Path, code: Mapping[str, str]) -> str:
    """Write each ``{file name: source}`` of ``code`` into ``root`` (the function's task root)."""
    for name, source in code.items():
        (root / name).write_text(textwrap.dedent(source).lstrip())
    return str(root)
