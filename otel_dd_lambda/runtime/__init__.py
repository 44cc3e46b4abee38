"""The Lambda side: handler instrumentation, ``configure()``, invocation and inferred spans,
cold starts, log correlation, X-Ray merging and profiling.

Everything here runs inside a Lambda sandbox and builds on the layers below it: ``ids`` →
``propagators`` → ``carriers`` / ``extract`` / ``injection`` → ``runtime``, with ``exporters``
beside them. Users reach it through ``otel_dd_lambda.configure``,
``otel_dd_lambda.instrument_handler`` and ``otel_dd_lambda.handler.handler``.
"""
