"""Where each kind of Lambda event (and each AWS message) carries the trace context.

One small module per carrier family, and one row per trigger in ``triggers`` naming its readers.
Readers return the carrier as a header mapping (to go through the composite propagator's
precedence), a Step Functions context object or the ``SpanContext`` derived from one, or None. Nothing here
raises on a malformed event: it logs at debug level.
"""
