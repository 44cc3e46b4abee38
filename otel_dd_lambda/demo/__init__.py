"""The end-to-end demo: three instrumented handlers (API Gateway -> SQS -> EventBridge), one trace.

``handlers`` holds the three Lambda handlers, ``events`` builds the Lambda events from what the
AWS APIs (moto on 127.0.0.1) return, ``tree`` prints the resulting trace with every id form.
Run it with ``otel-dd-lambda demo`` (``make demo``).
"""
