"""The end-to-end demo: three instrumented handlers (API Gateway -> SQS -> EventBridge), one trace.

``handlers`` holds the three Lambda handlers, ``events`` builds the Lambda events from what the
AWS APIs (moto on 127.0.0.1) return, ``tree`` describes the spans with every id form (the tree is
drawn by ``otel-dd-lambda view``'s renderer).
Run it with ``otel-dd-lambda demo`` (``make demo``).
"""
