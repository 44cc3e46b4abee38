"""Triggers that carry no trace context: DynamoDB streams, S3, CloudWatch Logs/Events, CloudFront.

Only their trigger tags (see ``tags``) and, where they have one, the time the event was created.
"""

from __future__ import annotations

from typing import Any, Dict


def dynamodb_created_seconds(record: Dict[str, Any]) -> Any:
    stream = record.get("dynamodb")
    return stream.get("ApproximateCreationDateTime") if type(stream) is dict else None


def s3_event_time(record: Dict[str, Any]) -> Any:
    return record.get("eventTime")
